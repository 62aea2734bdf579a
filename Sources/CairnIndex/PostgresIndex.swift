import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO
import Synchronization

/// Where a PostgreSQL index lives: `postgres://USER@HOST[:PORT]/DB`. The password comes from
/// `PGPASSWORD` (libpq's variable), never from the URL, the config file or the logs.
public struct PostgresTarget: Sendable, Equatable, CustomStringConvertible {
    public var user: String
    public var host: String
    public var port: Int
    public var database: String

    public init(parsing text: String) throws(IndexError) {
        guard let components = URLComponents(string: text), ["postgres", "postgresql"].contains(components.scheme ?? ""),
              let user = components.user, !user.isEmpty, let host = components.host, !host.isEmpty,
              components.query == nil, components.fragment == nil else {
            throw .invalidConfiguration("index '\(Self.redacted(text))' must be postgres://USER@HOST[:PORT]/DB (no query: a password goes in PGPASSWORD)")
        }
        guard components.password == nil else {
            throw .invalidConfiguration("index '\(Self.redacted(text))': no password in the URL (it would sit in a file and in logs); set PGPASSWORD")
        }
        let database = String(components.path.drop { $0 == "/" })
        guard !database.isEmpty, !database.contains("/") else {
            throw .invalidConfiguration("index '\(Self.redacted(text))' must name a database: postgres://USER@HOST[:PORT]/DB")
        }
        self.user = user
        self.host = host
        self.port = components.port ?? 5432
        self.database = database
    }

    public var description: String { "postgres://\(user)@\(host.contains(":") ? "[\(host)]" : host):\(port)/\(database)" }

    /// The URL for messages: any password and any query (libpq's `?password=`) replaced.
    static func redacted(_ text: String) -> String {
        var text = text
        if let query = text.firstIndex(where: { $0 == "?" || $0 == "#" }) { text = String(text[..<query]) + "?***" }
        guard let at = text.lastIndex(of: "@"), let scheme = text.range(of: "://"),
              let colon = text[scheme.upperBound..<at].firstIndex(of: ":") else { return text }
        return String(text[..<colon]) + ":***" + String(text[at...])
    }
}

/// The index on a PostgreSQL server, shared by every node server of a store. Statements are the
/// store's own (written with `?`, numbered here); each transaction runs on one pooled connection.
/// Write transactions first take one advisory lock, so writers are serialised exactly as SQLite
/// serialises them, and the store's "under the write lock" reasoning holds across hosts. Reads
/// run in REPEATABLE READ READ ONLY transactions: one snapshot, like a SQLite read.
public final class PostgresIndexDatabase: IndexDatabase {
    public var dialect: IndexDialect { .postgres }
    public let target: PostgresTarget
    /// The advisory lock every write transaction takes (an arbitrary constant: "cairn" in ASCII).
    static let writeLock: Int64 = 0x63_61_69_72_6E
    private let group: MultiThreadedEventLoopGroup
    private let configuration: PostgresConnection.Configuration
    private let logger: Logger
    private let idle = Mutex<[PostgresConnection]>([])
    private let slots: DispatchSemaphore
    private let nextID = Atomic<Int>(0)

    /// Connects once (so a wrong host, user or password fails here, with PostgreSQL's reason).
    /// `allowPlaintext`: without it the connection must be TLS, verified against the system's roots.
    public init(target: PostgresTarget, password: String?, allowPlaintext: Bool, maxConnections: Int = 16,
                logger: Logger = Logger(label: "cairn.index")) throws(IndexError) {
        self.target = target
        self.logger = logger
        let tls: PostgresConnection.Configuration.TLS
        if allowPlaintext {
            tls = .disable
        } else {
            do {
                tls = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
            } catch {
                throw .invalidConfiguration("TLS for the index: \(error)")
            }
        }
        var configuration = PostgresConnection.Configuration(host: target.host, port: target.port, username: target.user,
                                                             password: password, database: target.database, tls: tls)
        configuration.options.connectTimeout = .seconds(10)
        // A server that hangs or is cut off while it holds the writers' lock must not stop every
        // other server: the session ends after 2 minutes idle inside a transaction (longer than
        // the S3 checks a writer makes under the lock, ~30 s at worst), keepalives find a dead
        // peer within a minute, and no statement or lock wait lasts more than 2 minutes.
        configuration.options.additionalStartupParameters = [
            ("idle_in_transaction_session_timeout", "120s"), ("statement_timeout", "120s"), ("lock_timeout", "120s"),
            ("tcp_keepalives_idle", "30"), ("tcp_keepalives_interval", "10"), ("tcp_keepalives_count", "3"),
        ]
        self.configuration = configuration
        slots = DispatchSemaphore(value: maxConnections)
        group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let first = try connect()
        idle.withLock { $0.append(first) }
    }

    /// Closes the idle connections (each is kept alive until its close completes) and then the loops.
    deinit {
        let connections = idle.withLock { idle in
            defer { idle.removeAll() }
            return idle
        }
        let group = group
        let closes = connections.map { connection -> EventLoopFuture<Void> in connection.close() }
        EventLoopFuture<Void>.andAllComplete(closes, on: group.next()).whenComplete { _ in
            withExtendedLifetime(connections) {}
            group.shutdownGracefully(queue: .global()) { _ in }
        }
    }

    public func read<T>(_ body: (any IndexConnection) throws -> T) throws -> T {
        try transaction(begin: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", lock: false, body)
    }

    public func write<T>(_ body: (any IndexConnection) throws -> T) throws -> T {
        try transaction(begin: "BEGIN", lock: true, body)
    }

    public func readStatement<T>(_ body: (any IndexConnection) throws -> T) throws -> T {
        try withConnection { connection in try body(PostgresIndexConnection(connection, logger: logger)) }
    }

    private func transaction<T>(begin: String, lock: Bool, _ body: (any IndexConnection) throws -> T) throws -> T {
        try withConnection { connection in
            let index = PostgresIndexConnection(connection, logger: logger)
            try index.execute(sql: begin)
            do {
                if lock { try index.execute(sql: "SELECT pg_advisory_xact_lock(?)", arguments: [Self.writeLock]) }
                let result = try body(index)
                // COMMIT in a transaction an error aborted answers ROLLBACK, without an error.
                guard try index.commit() else {
                    throw IndexError.statement(sql: "COMMIT", reason: "the transaction was rolled back: a statement in it failed")
                }
                return result
            } catch {
                // A connection whose rollback fails is closed rather than handed to the next caller.
                do { try index.execute(sql: "ROLLBACK") } catch { Self.discard(connection) }
                throw error
            }
        }
    }

    /// One pooled connection for `body`; a closed one is replaced, a broken one is not reused.
    private func withConnection<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        slots.wait()
        defer { slots.signal() }
        let pooled = idle.withLock { $0.popLast() }
        if let pooled, pooled.isClosed { Self.discard(pooled) }
        let connection = try pooled.flatMap { $0.isClosed ? nil : $0 } ?? connect()
        let result: T
        do { result = try body(connection) } catch {
            if connection.isClosed { Self.discard(connection) } else { idle.withLock { $0.append(connection) } }
            throw error
        }
        idle.withLock { $0.append(connection) }
        return result
    }

    /// Closes a connection that is not to be reused, waiting until it is closed.
    static func discard(_ connection: PostgresConnection) {
        let close: EventLoopFuture<Void> = connection.close()
        _ = try? blockOn(close)
    }

    private func connect() throws(IndexError) -> PostgresConnection {
        let future = PostgresConnection.connect(on: group.next(), configuration: configuration,
                                                id: nextID.add(1, ordering: .relaxed).newValue, logger: logger)
        do { return try blockOn(future) } catch {
            throw .connection("\(target): \(PostgresIndexConnection.reason(error))")
        }
    }
}

/// One pooled connection inside a transaction.
final class PostgresIndexConnection: IndexConnection {
    let connection: PostgresConnection
    let logger: Logger
    private(set) var changesCount = 0
    private var savepoints = 0
    var dialect: IndexDialect { .postgres }

    init(_ connection: PostgresConnection, logger: Logger) {
        self.connection = connection
        self.logger = logger
    }

    func execute(sql: String, arguments: IndexArguments) throws {
        if arguments.isEmpty {
            // The extended protocol takes one statement at a time: DDL scripts are split here.
            for statement in Self.statements(sql) {
                changesCount = try run(statement, []).metadata.rows ?? 0
            }
        } else {
            changesCount = try run(sql, arguments.values).metadata.rows ?? 0
        }
    }

    func fetchRows(sql: String, arguments: IndexArguments) throws -> [IndexRow] {
        var rows: [IndexRow] = []
        try forEachRow(sql: sql, arguments: arguments) { rows.append($0) }
        return rows
    }

    /// The answer arrives whole (as PostgreSQL's compact wire rows); each becomes an `IndexRow`
    /// only when `body` takes it.
    func forEachRow(sql: String, arguments: IndexArguments, _ body: (IndexRow) throws -> Void) throws {
        let result = try run(sql, arguments.values)
        let columns = result.rows.first.map { $0.map(\.columnName) } ?? []
        for row in result.rows {
            try body(IndexRow(columns: columns, values: try row.map { try Self.value($0, sql: sql) }))
        }
    }

    /// Pipelined: every statement is queued on the connection before the first answer is awaited.
    /// After a failure the server refuses the rest (the transaction is aborted), as it would have
    /// refused them one by one.
    func executeAll(_ statements: [IndexStatementText]) throws {
        let queries = try statements.map { try Self.query($0.sql, $0.arguments.values) }
        let pending = zip(statements, queries).map { ($0.sql, connection.query($1, logger: logger)) }
        var failure: (any Error)?
        for (sql, reply) in pending {
            do {
                changesCount = try answer(reply, to: sql).metadata.rows ?? 0
            } catch IndexError.connection(let reason) {
                throw IndexError.connection(reason)
            } catch {
                if failure == nil { failure = error }
            }
        }
        if let failure { throw failure }
    }

    /// The savepoint, the statements and its release in one pipelined round trip; only a failure
    /// costs a second one (the rollback to the savepoint).
    func executeAtomically(_ statements: [IndexStatementText]) throws {
        savepoints += 1
        let name = "cairn_\(savepoints)"
        defer { savepoints -= 1 }
        do {
            try executeAll([IndexStatementText("SAVEPOINT \(name)")] + statements + [IndexStatementText("RELEASE SAVEPOINT \(name)")])
        } catch IndexError.connection(let reason) {
            throw IndexError.connection(reason)
        } catch {
            _ = try run("ROLLBACK TO SAVEPOINT \(name)", [])
            _ = try run("RELEASE SAVEPOINT \(name)", [])
            throw error
        }
    }

    /// True when the server committed (its answer's tag is COMMIT, not ROLLBACK).
    func commit() throws -> Bool {
        try run("COMMIT", []).metadata.command == "COMMIT"
    }

    func inSavepoint(_ body: () throws -> SavepointCompletion) throws {
        savepoints += 1
        let name = "cairn_\(savepoints)"
        defer { savepoints -= 1 }
        try execute(sql: "SAVEPOINT \(name)")
        let completion: SavepointCompletion
        do { completion = try body() } catch {
            try execute(sql: "ROLLBACK TO SAVEPOINT \(name)")
            try execute(sql: "RELEASE SAVEPOINT \(name)")
            throw error
        }
        if completion == .rollback { try execute(sql: "ROLLBACK TO SAVEPOINT \(name)") }
        try execute(sql: "RELEASE SAVEPOINT \(name)")
    }

    private func run(_ sql: String, _ values: [IndexValue]) throws -> PostgresQueryResult {
        try answer(connection.query(try Self.query(sql, values), logger: logger), to: sql)
    }

    /// The answer to a statement sent on this connection, within `answerDeadline`.
    private func answer(_ answer: EventLoopFuture<PostgresQueryResult>, to sql: String) throws -> PostgresQueryResult {
        do {
            return try blockOn(answer, deadline: Self.answerDeadline)
        } catch IndexError.connection(let reason) {
            // No answer in time: the connection may be anywhere in the protocol; it is not reused.
            PostgresIndexDatabase.discard(connection)
            throw IndexError.connection(reason)
        } catch {
            throw IndexError.statement(sql: sql, reason: Self.reason(error))
        }
    }

    /// The statement with `$n` placeholders and its values bound.
    static func query(_ sql: String, _ values: [IndexValue]) throws(IndexError) -> PostgresQuery {
        var binds = PostgresBindings(capacity: values.count)
        for value in values {
            switch value {
            case .null: binds.appendNull()
            case .integer(let v): binds.append(v)
            case .real(let v): binds.append(v)
            case .text(let v):
                // PostgreSQL's text cannot hold NUL; SQLite's can. Refused by name, not mangled.
                guard !v.utf8.contains(0) else {
                    throw IndexError.statement(sql: sql, reason: "a text value holds a NUL character, which PostgreSQL cannot store")
                }
                binds.append(v)
            case .blob(let v): binds.append(ByteBuffer(bytes: v))
            }
        }
        return PostgresQuery(unsafeSQL: numbered(sql), binds: binds)
    }

    /// Longer than the server's own statement and lock timeouts: past it the server is gone.
    static let answerDeadline = DispatchTimeInterval.seconds(150)

    /// `?` placeholders become `$1`, `$2`, … (outside quoted text, identifiers and comments).
    static func numbered(_ sql: String) -> String {
        var out = "", n = 0
        var quote: Character?
        var previous: Character = " "
        var lineComment = false, blockComment = false
        for c in sql {
            defer { previous = c }
            if lineComment {
                if c == "\n" { lineComment = false }
            } else if blockComment {
                if c == "/", previous == "*" { blockComment = false }
            } else if let q = quote {
                if c == q { quote = nil }
            } else if c == "'" || c == "\"" {
                quote = c
            } else if c == "-", previous == "-" {
                lineComment = true
            } else if c == "*", previous == "/" {
                blockComment = true
            } else if c == "?" {
                n += 1
                out += "$\(n)"
                continue
            }
            out.append(c)
        }
        return out
    }

    /// A script's statements, split at `;` outside quotes and `$$` bodies (trigger functions).
    static func statements(_ sql: String) -> [String] {
        var statements: [String] = [], current = ""
        var quote: Character?
        var dollarBody = false
        var previous: Character = " "
        for c in sql {
            current.append(c)
            if dollarBody {
                if c == "$", previous == "$" { dollarBody = false; previous = " "; continue }
            } else if let q = quote {
                if c == q { quote = nil }
            } else if c == "'" || c == "\"" {
                quote = c
            } else if c == "$", previous == "$" {
                dollarBody = true
                previous = " "
                continue
            } else if c == ";" {
                current.removeLast()
                let trimmed = current.trimmingCharacters(in: .whitespacesAndNewlines)
                if !trimmed.isEmpty { statements.append(trimmed) }
                current = ""
            }
            previous = c
        }
        let trimmed = current.trimmingCharacters(in: .whitespacesAndNewlines)
        if !trimmed.isEmpty { statements.append(trimmed) }
        return statements
    }

    static func value(_ cell: PostgresCell, sql: String) throws -> IndexValue {
        guard cell.bytes != nil else { return .null }
        do {
            switch cell.dataType {
            case .int2, .int4, .int8, .oid:
                return .integer(try cell.decode(Int64.self))
            case .float4, .float8:
                return .real(try cell.decode(Double.self))
            case .numeric:
                // sum() over BIGINT answers NUMERIC.
                let number = try cell.decode(Decimal.self)
                let integer = NSDecimalNumber(decimal: number).int64Value
                return Decimal(integer) == number ? .integer(integer) : .real(NSDecimalNumber(decimal: number).doubleValue)
            case .bool:
                return .integer(try cell.decode(Bool.self) ? 1 : 0)
            case .bytea:
                var buffer = try cell.decode(ByteBuffer.self)
                return .blob(buffer.readBytes(length: buffer.readableBytes) ?? [])
            default:
                return .text(try cell.decode(String.self))
            }
        } catch {
            throw IndexError.statement(sql: sql, reason: "column \(cell.columnName) of type \(cell.dataType): \(reason(error))")
        }
    }

    /// PostgreSQL's own message and SQLSTATE (PSQLError's description hides them).
    static func reason(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] {
                return message + (error.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? "")
            }
            return "\(error.code)" + (error.underlying.map { ": \($0)" } ?? "")
        }
        return "\(error)"
    }
}

/// Waits for `future` on the calling thread, which is never one of the index's own event loops
/// (the store is called from request handlers, blocking threads and commands); without an answer
/// by `deadline`, `IndexError.connection`.
func blockOn<T: Sendable>(_ future: EventLoopFuture<T>, deadline: DispatchTimeInterval = .seconds(60)) throws -> T {
    let done = DispatchSemaphore(value: 0)
    let outcome = Mutex<Result<T, any Error>?>(nil)
    future.whenComplete { result in
        outcome.withLock { $0 = result }
        done.signal()
    }
    guard done.wait(timeout: .now() + deadline) == .success, let result = outcome.withLock({ $0 }) else {
        throw IndexError.connection("no answer from the index server in \(deadline)")
    }
    return try result.get()
}
