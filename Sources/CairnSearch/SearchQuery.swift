import Foundation

/// A federated search query as samply Focus sends it (focus `src/ast.rs`): an AND/OR tree whose
/// leaves compare one criterion (`key`, a catalogue code such as `RID10311` for modality) with a
/// value. Parsed with bounds, so a hostile query is an error naming the problem, never a crash.
public indirect enum SearchNode: Equatable, Sendable {
    case operation(SearchOperand, [SearchNode])
    case condition(SearchCondition)
}

public enum SearchOperand: String, Sendable {
    case and = "AND", or = "OR"
}

public struct SearchCondition: Equatable, Sendable {
    public enum Comparison: String, Sendable, CaseIterable {
        case equals = "EQUALS", notEquals = "NOT_EQUALS", `in` = "IN", between = "BETWEEN"
        case lowerThan = "LOWER_THAN", greaterThan = "GREATER_THAN", contains = "CONTAINS"
    }

    public enum Value: Equatable, Sendable {
        case string(String)
        case strings([String])
        case bool(Bool)
        case number(Double)
        case range(min: Double, max: Double)
    }

    public var key: String
    public var comparison: Comparison
    public var value: Value

    public init(key: String, comparison: Comparison, value: Value) {
        self.key = key
        self.comparison = comparison
        self.value = value
    }
}

/// Why a query was refused (a 422 names it).
public struct SearchQueryError: Error, Equatable, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

public struct SearchQuery: Equatable, Sendable {
    public var root: SearchNode
    /// The query id Focus sends (`<uuid>__search__<uuid>`), echoed into the audit log.
    public var id: String?

    /// Bounds on what one query may ask.
    public static let maxBodyBytes = 64 * 1024
    public static let maxDepth = 16
    public static let maxNodes = 2_000
    public static let maxListItems = 256
    static let maxStringBytes = 256

    public init(root: SearchNode, id: String? = nil) {
        self.root = root
        self.id = id
    }

    /// `{"ast": {...}, "id": "..."}`, as Focus's `omop` endpoint type POSTs it (numbers may be
    /// floats: Focus re-serialises them as f64).
    public init(json body: [UInt8]) throws(SearchQueryError) {
        guard body.count <= Self.maxBodyBytes else { throw SearchQueryError("body over \(Self.maxBodyBytes) bytes") }
        // Depth is checked on the bytes before any decoder recurses into them.
        let depth = Self.nesting(body)
        guard depth <= 2 * Self.maxDepth + 4 else { throw SearchQueryError("nested deeper than \(Self.maxDepth) operations") }
        let document: Document
        do { document = try JSONDecoder().decode(Document.self, from: Data(body)) } catch let error as DecodingError {
            throw SearchQueryError(Self.describe(error))
        } catch {
            throw SearchQueryError("\(error)")
        }
        var nodes = 0
        root = try Self.node(document.ast, depth: 0, nodes: &nodes, path: "ast")
        if let id = document.id {
            guard id.utf8.count <= Self.maxStringBytes else { throw SearchQueryError("\"id\" longer than \(Self.maxStringBytes) bytes") }
            self.id = id
        }
    }

    /// Focus's `eucaim-api` endpoint type: `?gender=female&diagnosis=SNOMEDCT…&modality=CT&bodyPart=lung&manufacturer=…`,
    /// one value each, AND across them (focus `src/eucaim_api.rs`). Unknown parameters are refused.
    public init(parameters: [(String, String)]) throws(SearchQueryError) {
        guard parameters.count <= 16 else { throw SearchQueryError("more than 16 query parameters") }
        var children: [SearchNode] = []
        var seen = Set<String>()
        for (name, value) in parameters {
            guard let key = EucaimCodes.parameterKeys[name] else {
                throw SearchQueryError("unknown parameter '\(name.prefix(64))'; known: "
                    + EucaimCodes.parameterKeys.keys.sorted().joined(separator: ", "))
            }
            guard seen.insert(name).inserted else { throw SearchQueryError("parameter '\(name)' given twice; one value each") }
            guard !value.isEmpty, value.utf8.count <= Self.maxStringBytes else {
                throw SearchQueryError("parameter '\(name)' must have a value of 1 to \(Self.maxStringBytes) bytes")
            }
            children.append(.condition(SearchCondition(key: key, comparison: .equals,
                                                       value: .string(EucaimCodes.code(forParameter: name, value: value)))))
        }
        root = .operation(.and, children)
    }

    /// A decoding failure as a path into the query and what was wrong there.
    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let steps = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return steps.isEmpty ? "the body" : String(steps.dropFirst(steps.hasPrefix(".") ? 1 : 0))
        }
        switch error {
        case .dataCorrupted(let context) where context.codingPath.isEmpty:
            return "not JSON: \(context.debugDescription)"
        case .dataCorrupted(let context):
            return "\(path(context)): \(context.debugDescription)"
        case .typeMismatch(let type, let context):
            let wanted = type == Document.self || "\(type)".hasPrefix("Dictionary") ? "an object" : "\(type)"
            return "\(path(context)): must be \(wanted)" + (context.codingPath.isEmpty ? " {\"ast\": …, \"id\": …}" : "")
        case .valueNotFound(_, let context):
            return "\(path(context)): missing"
        case .keyNotFound(let key, let context):
            return "\(path(context)): no \"\(key.stringValue)\" member"
        @unknown default:
            return "\(error)"
        }
    }

    /// The deepest bracket nesting outside strings.
    static func nesting(_ bytes: [UInt8]) -> Int {
        var depth = 0, deepest = 0, inString = false, escaped = false
        for byte in bytes {
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
                deepest = max(deepest, depth)
            case UInt8(ascii: "}"), UInt8(ascii: "]"): depth -= 1
            default: break
            }
        }
        return deepest
    }

    /// The document as decoded: nodes stay loosely typed until `node` checks them with a path.
    struct Document: Decodable {
        var ast: RawNode
        var id: String?
    }

    struct RawNode: Decodable {
        var operand: String?
        var children: [RawNode]?
        var key: String?
        var type: String?
        var value: RawValue?
    }

    enum RawValue: Decodable {
        case value(SearchCondition.Value)
        case unreadable(String)

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let flag = try? container.decode(Bool.self) { self = .value(.bool(flag)); return }
            if let number = try? container.decode(Double.self) { self = .value(.number(number)); return }
            if let text = try? container.decode(String.self) { self = .value(.string(text)); return }
            if let list = try? container.decode([String].self) { self = .value(.strings(list)); return }
            if let range = try? container.decode([String: Double].self), range.count == 2, let low = range["min"], let high = range["max"] {
                self = .value(.range(min: low, max: high))
                return
            }
            self = .unreadable("must be a string, a list of strings, a boolean, a number or {\"min\": number, \"max\": number}")
        }
    }

    private static func node(_ raw: RawNode, depth: Int, nodes: inout Int, path: String) throws(SearchQueryError) -> SearchNode {
        guard depth <= maxDepth else { throw SearchQueryError("\(path): nested deeper than \(maxDepth)") }
        nodes += 1
        guard nodes <= maxNodes else { throw SearchQueryError("more than \(maxNodes) nodes") }
        if let operandText = raw.operand {
            guard let operand = SearchOperand(rawValue: operandText) else {
                throw SearchQueryError("\(path).operand: must be \"AND\" or \"OR\", not '\(operandText.prefix(32))'")
            }
            guard let children = raw.children else { throw SearchQueryError("\(path).children: missing") }
            var parsed: [SearchNode] = []
            for (index, child) in children.enumerated() {
                parsed.append(try node(child, depth: depth + 1, nodes: &nodes, path: "\(path).children[\(index)]"))
            }
            return .operation(operand, parsed)
        }
        guard let key = raw.key, !key.isEmpty, key.utf8.count <= maxStringBytes else {
            throw SearchQueryError("\(path): neither an operation (operand, children) nor a condition with a key")
        }
        guard let typeText = raw.type, let comparison = SearchCondition.Comparison(rawValue: typeText) else {
            throw SearchQueryError("\(path).type: must be one of " + SearchCondition.Comparison.allCases.map(\.rawValue).joined(separator: ", "))
        }
        guard let rawValue = raw.value else { throw SearchQueryError("\(path).value: missing") }
        guard case .value(let value) = rawValue else {
            if case .unreadable(let why) = rawValue { throw SearchQueryError("\(path).value: \(why)") }
            throw SearchQueryError("\(path).value: unreadable")
        }
        switch value {
        case .string(let text) where text.utf8.count > maxStringBytes:
            throw SearchQueryError("\(path).value: longer than \(maxStringBytes) bytes")
        case .strings(let list):
            guard list.count <= maxListItems else { throw SearchQueryError("\(path).value: more than \(maxListItems) values") }
            guard list.allSatisfy({ $0.utf8.count <= maxStringBytes }) else {
                throw SearchQueryError("\(path).value: a value longer than \(maxStringBytes) bytes")
            }
        case .number(let number) where !number.isFinite, .range(min: let number, max: _) where !number.isFinite,
             .range(min: _, max: let number) where !number.isFinite:
            throw SearchQueryError("\(path).value: not a finite number")
        default:
            break
        }
        return .condition(SearchCondition(key: key, comparison: comparison, value: value))
    }
}
