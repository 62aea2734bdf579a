/// Which SQL engine a connection speaks to, for the few statements that differ (pattern
/// matching, aggregates, DDL). Everything else is written once, in the subset both accept.
public enum IndexDialect: String, Sendable {
    case sqlite
    case postgres
}

/// Whether a savepoint's work stays.
public enum SavepointCompletion: Sendable {
    case commit
    case rollback
}

/// A connection inside one transaction (or, from `readStatement`, one autocommitted statement).
/// Statements use `?` placeholders on both engines.
public protocol IndexConnection: AnyObject {
    var dialect: IndexDialect { get }
    /// Runs one statement, or, without arguments, several separated by `;` (DDL).
    func execute(sql: String, arguments: IndexArguments) throws
    func fetchRows(sql: String, arguments: IndexArguments) throws -> [IndexRow]
    /// The rows one at a time, for results too large to hold as rows at once.
    func forEachRow(sql: String, arguments: IndexArguments, _ body: (IndexRow) throws -> Void) throws
    /// Runs statements in order, as `execute` would one after another; a server engine sends them
    /// all before it waits for the answers (one round trip). The first failure is thrown.
    func executeAll(_ statements: [IndexStatementText]) throws
    /// `executeAll` in a savepoint: all of the statements or, with the error thrown, none.
    func executeAtomically(_ statements: [IndexStatementText]) throws
    /// Rows the last `execute` inserted, changed or deleted.
    var changesCount: Int { get }
    /// Runs `body` in a savepoint: an error or `.rollback` undoes its statements and only them.
    func inSavepoint(_ body: () throws -> SavepointCompletion) throws
}

extension IndexConnection {
    public func execute(sql: String) throws { try execute(sql: sql, arguments: []) }

    public func executeAtomically(_ statements: [IndexStatementText]) throws {
        try inSavepoint {
            try executeAll(statements)
            return .commit
        }
    }

    /// A statement run many times in one transaction (engines cache prepared statements by text).
    public func cachedStatement(sql: String) -> IndexStatement { IndexStatement(connection: self, sql: sql) }
}

/// One statement with its arguments, for `executeAll`.
public struct IndexStatementText {
    public let sql: String
    public let arguments: IndexArguments

    public init(_ sql: String, _ arguments: IndexArguments = []) {
        self.sql = sql
        self.arguments = arguments
    }
}

/// A statement bound to a connection, run with different arguments.
public struct IndexStatement {
    let connection: any IndexConnection
    let sql: String

    public func execute(arguments: IndexArguments) throws { try connection.execute(sql: sql, arguments: arguments) }
}

extension IndexRow {
    public static func fetchAll(_ db: any IndexConnection, sql: String, arguments: IndexArguments = []) throws -> [IndexRow] {
        try db.fetchRows(sql: sql, arguments: arguments)
    }

    public static func fetchOne(_ db: any IndexConnection, sql: String, arguments: IndexArguments = []) throws -> IndexRow? {
        try db.fetchRows(sql: sql, arguments: arguments).first
    }

    public static func fetchAll(_ statement: IndexStatement, arguments: IndexArguments = []) throws -> [IndexRow] {
        try statement.connection.fetchRows(sql: statement.sql, arguments: arguments)
    }

    public static func fetchOne(_ statement: IndexStatement, arguments: IndexArguments = []) throws -> IndexRow? {
        try statement.connection.fetchRows(sql: statement.sql, arguments: arguments).first
    }
}

extension IndexDecodable {
    /// The first column of the first row; nil when there is no row or it is NULL.
    public static func fetchOne(_ db: any IndexConnection, sql: String, arguments: IndexArguments = []) throws -> Self? {
        guard let value = try db.fetchRows(sql: sql, arguments: arguments).first?.values.first, value != .null else { return nil }
        return try Self(indexValue: value)
    }

    /// The first column of every row (a NULL is an error).
    public static func fetchAll(_ db: any IndexConnection, sql: String, arguments: IndexArguments = []) throws -> [Self] {
        try db.fetchRows(sql: sql, arguments: arguments).map { row throws(IndexError) in
            try Self(indexValue: row.values.first ?? .null)
        }
    }
}

/// An index database: transactions on connections from a pool. Writers are serialised on both
/// engines (SQLite has one writer; on PostgreSQL every write transaction first takes the store's
/// advisory lock), so what the store does "under the write lock" means the same on both.
public protocol IndexDatabase: Sendable {
    var dialect: IndexDialect { get }
    func read<T>(_ body: (any IndexConnection) throws -> T) throws -> T
    func write<T>(_ body: (any IndexConnection) throws -> T) throws -> T
    /// One statement, no explicit transaction (each statement is atomic on its own).
    func readStatement<T>(_ body: (any IndexConnection) throws -> T) throws -> T
}
