import Foundation

/// One value bound to or read from an index statement: SQLite's five storage classes, which is
/// also all the node's index stores on PostgreSQL (BIGINT, DOUBLE PRECISION, TEXT, BYTEA).
public enum IndexValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])
}

/// A Swift value that can be bound as a statement argument.
public protocol IndexBindable: Sendable {
    var indexValue: IndexValue { get }
}

/// A Swift value that a column can be read as. Reading the wrong kind is an error, never a crash
/// and never a silent default.
public protocol IndexDecodable {
    init(indexValue: IndexValue) throws(IndexError)
}

/// A statement's arguments, in order (nil binds NULL).
public typealias IndexArguments = [(any IndexBindable)?]

extension IndexArguments {
    var values: [IndexValue] { map { $0?.indexValue ?? .null } }
}

extension Int64: IndexBindable, IndexDecodable {
    public var indexValue: IndexValue { .integer(self) }
    public init(indexValue: IndexValue) throws(IndexError) {
        switch indexValue {
        case .integer(let value): self = value
        // SQLite answers aggregates over REAL columns, and PostgreSQL NUMERIC sums, as reals.
        case .real(let value) where value.rounded() == value && abs(value) < 9.2e18: self = Int64(value)
        default: throw .conversion(expected: "an integer", found: indexValue)
        }
    }
}

extension Int: IndexBindable, IndexDecodable {
    public var indexValue: IndexValue { .integer(Int64(self)) }
    public init(indexValue: IndexValue) throws(IndexError) { self = Int(try Int64(indexValue: indexValue)) }
}

extension Int32: IndexBindable {
    public var indexValue: IndexValue { .integer(Int64(self)) }
}

extension UInt16: IndexBindable {
    public var indexValue: IndexValue { .integer(Int64(self)) }
}

/// Sizes and offsets: a negative value in the index is an error, not a trap.
extension UInt64: IndexDecodable {
    public init(indexValue: IndexValue) throws(IndexError) {
        guard let value = UInt64(exactly: try Int64(indexValue: indexValue)) else {
            throw .conversion(expected: "a size or offset (0 or more)", found: indexValue)
        }
        self = value
    }
}

extension Bool: IndexBindable, IndexDecodable {
    public var indexValue: IndexValue { .integer(self ? 1 : 0) }
    public init(indexValue: IndexValue) throws(IndexError) { self = try Int64(indexValue: indexValue) != 0 }
}

extension Double: IndexBindable, IndexDecodable {
    public var indexValue: IndexValue { .real(self) }
    public init(indexValue: IndexValue) throws(IndexError) {
        switch indexValue {
        case .real(let value): self = value
        case .integer(let value): self = Double(value)
        default: throw .conversion(expected: "a number", found: indexValue)
        }
    }
}

extension String: IndexBindable, IndexDecodable {
    public var indexValue: IndexValue { .text(self) }
    public init(indexValue: IndexValue) throws(IndexError) {
        guard case .text(let value) = indexValue else { throw .conversion(expected: "text", found: indexValue) }
        self = value
    }
}

extension Data: IndexBindable, IndexDecodable {
    public var indexValue: IndexValue { .blob([UInt8](self)) }
    public init(indexValue: IndexValue) throws(IndexError) {
        guard case .blob(let value) = indexValue else { throw .conversion(expected: "bytes", found: indexValue) }
        self = Data(value)
    }
}

extension Array: IndexBindable where Element == UInt8 {
    public var indexValue: IndexValue { .blob(self) }
}

extension Array: IndexDecodable where Element == UInt8 {
    public init(indexValue: IndexValue) throws(IndexError) {
        guard case .blob(let value) = indexValue else { throw .conversion(expected: "bytes", found: indexValue) }
        self = value
    }
}

extension Optional: IndexDecodable where Wrapped: IndexDecodable {
    public init(indexValue: IndexValue) throws(IndexError) {
        self = indexValue == .null ? nil : try Wrapped(indexValue: indexValue)
    }
}

/// Errors of the index layer, with the statement where one was running.
public enum IndexError: Error, CustomStringConvertible, Sendable {
    case conversion(expected: String, found: IndexValue)
    case noSuchColumn(String)
    case statement(sql: String, reason: String)
    case connection(String)
    case invalidConfiguration(String)

    public var description: String {
        switch self {
        case .conversion(let expected, let found): "index column holds \(found.kind), expected \(expected)"
        case .noSuchColumn(let name): "index row has no column '\(name)'"
        case .statement(let sql, let reason): "index statement failed (\(reason)): \(sql.prefix(200))"
        case .connection(let reason): "index database unreachable: \(reason)"
        case .invalidConfiguration(let reason): reason
        }
    }
}

extension IndexValue {
    /// What kind of value, without the value (index contents stay out of error messages).
    var kind: String {
        switch self {
        case .null: "NULL"
        case .integer: "an integer"
        case .real: "a real"
        case .text: "text"
        case .blob: "bytes"
        }
    }
}

/// One result row: its column names and values.
public struct IndexRow: Sendable {
    public let columns: [String]
    public let values: [IndexValue]

    public init(columns: [String], values: [IndexValue]) {
        self.columns = columns
        self.values = values
    }

    public subscript<Value: IndexDecodable>(_ column: String) -> Value {
        get throws(IndexError) {
            guard let i = columns.firstIndex(of: column) else { throw .noSuchColumn(column) }
            return try Value(indexValue: values[i])
        }
    }

    public subscript<Value: IndexDecodable>(_ position: Int) -> Value {
        get throws(IndexError) {
            guard values.indices.contains(position) else { throw .noSuchColumn("#\(position)") }
            return try Value(indexValue: values[position])
        }
    }

    public func hasColumn(_ column: String) -> Bool { columns.contains(column) }
}
