import Foundation
import GRDB

/// The embedded index: a SQLite file through GRDB (WAL, synchronous=FULL; `DurableDatabase`).
public struct SQLiteIndexDatabase: IndexDatabase {
    public let pool: DatabasePool
    public var dialect: IndexDialect { .sqlite }

    public init(pool: DatabasePool) { self.pool = pool }

    public func read<T>(_ body: (any IndexConnection) throws -> T) throws -> T {
        try pool.read { db in try body(SQLiteIndexConnection(db)) }
    }

    public func write<T>(_ body: (any IndexConnection) throws -> T) throws -> T {
        try pool.write { db in try body(SQLiteIndexConnection(db)) }
    }

    public func readStatement<T>(_ body: (any IndexConnection) throws -> T) throws -> T {
        try pool.unsafeRead { db in try body(SQLiteIndexConnection(db)) }
    }
}

/// A GRDB `Database` seen through `IndexConnection`; statements with arguments are prepared once
/// per connection (GRDB's statement cache).
public final class SQLiteIndexConnection: IndexConnection {
    public let db: Database
    public var dialect: IndexDialect { .sqlite }

    public init(_ db: Database) { self.db = db }

    public func execute(sql: String, arguments: IndexArguments) throws {
        if arguments.isEmpty {
            try db.execute(sql: sql)
        } else {
            try db.cachedStatement(sql: sql).execute(arguments: Self.arguments(arguments))
        }
    }

    public func fetchRows(sql: String, arguments: IndexArguments) throws -> [IndexRow] {
        var rows: [IndexRow] = []
        try forEachRow(sql: sql, arguments: arguments) { rows.append($0) }
        return rows
    }

    public func forEachRow(sql: String, arguments: IndexArguments, _ body: (IndexRow) throws -> Void) throws {
        let statement = try db.cachedStatement(sql: sql)
        let columns = statement.columnNames
        let cursor = try Row.fetchCursor(statement, arguments: Self.arguments(arguments))
        while let row = try cursor.next() {
            try body(IndexRow(columns: columns, values: row.databaseValues.map(Self.value)))
        }
    }

    public func executeAll(_ statements: [IndexStatementText]) throws {
        for statement in statements { try execute(sql: statement.sql, arguments: statement.arguments) }
    }

    public var changesCount: Int { db.changesCount }

    public func inSavepoint(_ body: () throws -> SavepointCompletion) throws {
        try db.inSavepoint {
            switch try body() {
            case .commit: .commit
            case .rollback: .rollback
            }
        }
    }

    static func arguments(_ arguments: IndexArguments) -> StatementArguments {
        StatementArguments(arguments.values.map { value -> DatabaseValue in
            switch value {
            case .null: .null
            case .integer(let v): v.databaseValue
            case .real(let v): v.databaseValue
            case .text(let v): v.databaseValue
            case .blob(let v): Data(v).databaseValue
            }
        })
    }

    static func value(_ value: DatabaseValue) -> IndexValue {
        switch value.storage {
        case .null: .null
        case .int64(let v): .integer(v)
        case .double(let v): .real(v)
        case .string(let v): .text(v)
        case .blob(let v): .blob([UInt8](v))
        }
    }
}
