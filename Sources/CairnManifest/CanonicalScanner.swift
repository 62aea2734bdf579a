import CairnFoundation

/// Validates that bytes are exactly the canonical encoding `JSONValue.canonicalBytes()` would
/// produce, without building values, and hands out byte ranges of members and elements. The hub
/// reads million-entry snapshots with it: each entry is hashed and stored from its own bytes, so
/// nothing is decoded into a tree and serialised again.
///
/// Canonical means: no whitespace; object keys unique and in increasing UTF-8 byte order; strings
/// valid UTF-8 with only `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t` and `\u00xx` (lowercase, for the
/// other control characters) as escapes; integers without leading zeros or `-0`, within Int64;
/// no fractions or exponents; at most `JSONParser.maxDepth` levels.
public struct CanonicalScanner {
    public struct Failure: Error, CustomStringConvertible, Equatable {
        public let offset: Int
        public let reason: String
        public var description: String { "not canonical JSON at byte \(offset): \(reason)" }
    }

    let bytes: UnsafeBufferPointer<UInt8>

    public init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    func fail(_ offset: Int, _ reason: String) -> Failure { Failure(offset: offset, reason: reason) }

    /// Checks that the whole buffer is one canonical value.
    public func validateDocument() throws {
        let end = try value(at: 0, depth: 0)
        guard end == bytes.count else { throw fail(end, "trailing bytes") }
    }

    /// The value starting at `start`, validated; returns where it ends.
    public func value(at start: Int, depth: Int) throws -> Int {
        guard start < bytes.count else { throw fail(start, "unexpected end") }
        switch bytes[start] {
        case UInt8(ascii: "{"): return try object(at: start, depth: depth) { _, valueStart in try value(at: valueStart, depth: depth + 1) }
        case UInt8(ascii: "["): return try array(at: start, depth: depth) { try value(at: $0, depth: depth + 1) }
        case UInt8(ascii: "\""): return try string(at: start).end
        case UInt8(ascii: "t"): return try literal("true", at: start)
        case UInt8(ascii: "f"): return try literal("false", at: start)
        case UInt8(ascii: "n"): return try literal("null", at: start)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try integer(at: start).end
        default: throw fail(start, "unexpected byte \(bytes[start])")
        }
    }

    /// Walks the object at `start`. `member` gets the key's range (with its quotes) and where the
    /// value starts, and returns where the value ends (validating it, usually through `value`).
    public func object(at start: Int, depth: Int, member: (Range<Int>, Int) throws -> Int) throws -> Int {
        guard depth < JSONParser.maxDepth else { throw fail(start, "nested too deeply") }
        guard start < bytes.count, bytes[start] == UInt8(ascii: "{") else { throw fail(start, "expected an object") }
        var position = start + 1
        if position < bytes.count, bytes[position] == UInt8(ascii: "}") { return position + 1 }
        var previousKey: (range: Range<Int>, escaped: Bool)?
        while true {
            guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { throw fail(position, "expected a key") }
            let key = try string(at: position)
            let keyRange = position..<key.end
            if let previous = previousKey {
                guard try keyPrecedes(previous.range, previous.escaped, keyRange, key.escaped) else {
                    throw fail(position, "keys not unique and in byte order")
                }
            }
            previousKey = (keyRange, key.escaped)
            position = key.end
            guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else { throw fail(position, "expected :") }
            position = try member(keyRange, position + 1)
            guard position < bytes.count else { throw fail(position, "unterminated object") }
            if bytes[position] == UInt8(ascii: "}") { return position + 1 }
            guard bytes[position] == UInt8(ascii: ",") else { throw fail(position, "expected , or }") }
            position += 1
        }
    }

    /// Walks the array at `start`; `element` gets where each element starts and returns its end.
    public func array(at start: Int, depth: Int, element: (Int) throws -> Int) throws -> Int {
        guard depth < JSONParser.maxDepth else { throw fail(start, "nested too deeply") }
        guard start < bytes.count, bytes[start] == UInt8(ascii: "[") else { throw fail(start, "expected an array") }
        var position = start + 1
        if position < bytes.count, bytes[position] == UInt8(ascii: "]") { return position + 1 }
        while true {
            position = try element(position)
            guard position < bytes.count else { throw fail(position, "unterminated array") }
            if bytes[position] == UInt8(ascii: "]") { return position + 1 }
            guard bytes[position] == UInt8(ascii: ",") else { throw fail(position, "expected , or ]") }
            position += 1
        }
    }

    /// The string at `start` (at its opening quote): where it ends, and whether it has escapes.
    public func string(at start: Int) throws -> (end: Int, escaped: Bool) {
        var position = start + 1
        var escaped = false, ascii = true
        while position < bytes.count {
            let byte = bytes[position]
            if byte == UInt8(ascii: "\"") {
                if !ascii, String(validating: UnsafeBufferPointer(rebasing: bytes[(start + 1)..<position]), as: UTF8.self) == nil {
                    throw fail(start, "string is not valid UTF-8")
                }
                return (position + 1, escaped)
            }
            if byte == UInt8(ascii: "\\") {
                escaped = true
                position = try escape(at: position)
                continue
            }
            guard byte >= 0x20 else { throw fail(position, "control character in string") }
            if byte >= 0x80 { ascii = false }
            position += 1
        }
        throw fail(start, "unterminated string")
    }

    /// One escape as `JSONValue` writes it; returns the position after it.
    private func escape(at position: Int) throws -> Int {
        guard position + 1 < bytes.count else { throw fail(position, "unterminated escape") }
        switch bytes[position + 1] {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "b"), UInt8(ascii: "f"), UInt8(ascii: "n"),
             UInt8(ascii: "r"), UInt8(ascii: "t"):
            return position + 2
        case UInt8(ascii: "u"):
            guard position + 5 < bytes.count, bytes[position + 2] == UInt8(ascii: "0"), bytes[position + 3] == UInt8(ascii: "0")
            else { throw fail(position, "\\u escape of a character that is written as itself") }
            let high = bytes[position + 4], low = bytes[position + 5]
            let lowValue: UInt8
            switch low {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): lowValue = low - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): lowValue = low - UInt8(ascii: "a") + 10
            default: throw fail(position, "\\u escape not in lowercase hex")
            }
            guard high == UInt8(ascii: "0") || high == UInt8(ascii: "1") else {
                throw fail(position, "\\u escape of a character that is written as itself")
            }
            let value = (high - UInt8(ascii: "0")) << 4 | lowValue
            guard ![0x08, 0x09, 0x0A, 0x0C, 0x0D].contains(value) else { throw fail(position, "\\u escape of a character with a short escape") }
            return position + 6
        default:
            throw fail(position, "escape that the canonical form does not use")
        }
    }

    /// The integer at `start`: its value and where it ends.
    public func integer(at start: Int) throws -> (value: Int64, end: Int) {
        var position = start
        let negative = bytes[position] == UInt8(ascii: "-")
        if negative { position += 1 }
        let digitsStart = position
        var value: Int64 = 0
        while position < bytes.count, bytes[position] >= UInt8(ascii: "0"), bytes[position] <= UInt8(ascii: "9") {
            let digit = Int64(bytes[position] - UInt8(ascii: "0"))
            // Accumulated as a negative number so that Int64.min fits.
            let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (next, overflow2) = times10.subtractingReportingOverflow(digit)
            guard !overflow1, !overflow2 else { throw fail(start, "integer out of range") }
            value = next
            position += 1
        }
        let digits = position - digitsStart
        guard digits > 0 else { throw fail(start, "expected digits") }
        guard digits == 1 || bytes[digitsStart] != UInt8(ascii: "0") else { throw fail(start, "leading zero") }
        if negative {
            guard value != 0 else { throw fail(start, "-0 is not canonical") }
            return (value, position)
        }
        guard value != Int64.min else { throw fail(start, "integer out of range") }
        return (-value, position)
    }

    private func literal(_ word: StaticString, at start: Int) throws -> Int {
        let count = word.utf8CodeUnitCount
        guard start + count <= bytes.count,
              word.withUTF8Buffer({ $0.elementsEqual(UnsafeBufferPointer(rebasing: bytes[start..<(start + count)])) })
        else { throw fail(start, "expected \(word)") }
        return start + count
    }

    /// Canonical key order: by the UTF-8 bytes of the decoded keys. Keys without escapes are
    /// compared in place.
    private func keyPrecedes(_ a: Range<Int>, _ aEscaped: Bool, _ b: Range<Int>, _ bEscaped: Bool) throws -> Bool {
        if !aEscaped, !bEscaped {
            return bytes[(a.lowerBound + 1)..<(a.upperBound - 1)].lexicographicallyPrecedes(bytes[(b.lowerBound + 1)..<(b.upperBound - 1)])
        }
        return Array(try decodedString(a).utf8).lexicographicallyPrecedes(Array(try decodedString(b).utf8))
    }

    /// The string whose range (with its quotes) is `range`, unescaped.
    public func decodedString(_ range: Range<Int>) throws -> String {
        let inner = UnsafeBufferPointer(rebasing: bytes[(range.lowerBound + 1)..<(range.upperBound - 1)])
        if !inner.contains(UInt8(ascii: "\\")) { return String(decoding: inner, as: UTF8.self) }
        guard case .string(let value) = try JSONParser.parse(Array(UnsafeBufferPointer(rebasing: bytes[range]))) else {
            throw fail(range.lowerBound, "expected a string")
        }
        return value
    }

    /// Whether the key at `range` (with its quotes) is `name`, an ASCII name without escapes.
    public func key(_ range: Range<Int>, is name: StaticString) -> Bool {
        name.withUTF8Buffer { name in
            range.count == name.count + 2 && name.elementsEqual(UnsafeBufferPointer(rebasing: bytes[(range.lowerBound + 1)..<(range.upperBound - 1)]))
        }
    }
}
