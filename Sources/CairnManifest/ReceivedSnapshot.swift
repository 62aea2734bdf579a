import CairnFoundation
import Crypto

/// A snapshot as the hub receives it: the pushed bytes, checked once to be canonical, with every
/// top-level member but `added` decoded and each added entry kept as the range of its canonical
/// bytes (a million-entry snapshot is 300 MB; its entries are hashed and stored from those bytes).
public struct ReceivedSnapshot: Sendable {
    public let bytes: [UInt8]
    /// SHA-256 of the bytes, `sha256:<hex>`.
    public let digest: String
    /// The top-level members except `added`.
    public let header: [String: JSONValue]
    /// Where each added entry's canonical bytes are, in document order.
    public let added: [Range<Int>]
    /// The bytes to cut out to get what the node signed: the `signature` member and one comma.
    private let signatureCut: Range<Int>?

    public var node: String { header["node"]?.string ?? "" }
    public var dataset: String { header["dataset"]?.string ?? "" }
    public var seq: Int64 { header["seq"]?.int ?? 0 }
    public var parent: String? { header["parent"]?.string }
    public var entriesRoot: String { header["entries_root"]?.string ?? "" }
    public var entries: Int64? { header["entries"]?.int }
    public var removed: [String] { header["removed"]?.array?.compactMap(\.string) ?? [] }

    /// Fails unless `bytes` are a canonical `cairn.snapshot/v1` document.
    public init(canonical bytes: [UInt8]) throws {
        var header: [String: JSONValue] = [:]
        var added: [Range<Int>] = []
        var signatureCut: Range<Int>?
        try bytes.withUnsafeBufferPointer { buffer in
            let scanner = CanonicalScanner(buffer)
            var first = true
            let end = try scanner.object(at: 0, depth: 0) { key, valueStart in
                defer { first = false }
                if scanner.key(key, is: "added") {
                    return try scanner.array(at: valueStart, depth: 1) { start in
                        let end = try scanner.value(at: start, depth: 2)
                        added.append(start..<end)
                        return end
                    }
                }
                let end = try scanner.value(at: valueStart, depth: 1)
                let name = try scanner.decodedString(key)
                header[name] = try JSONParser.parse(Array(buffer[valueStart..<end]))
                if name == "signature" {
                    let followedByComma = end < buffer.count && buffer[end] == UInt8(ascii: ",")
                    signatureCut = first ? key.lowerBound..<(followedByComma ? end + 1 : end) : (key.lowerBound - 1)..<end
                }
                return end
            }
            guard end == buffer.count else { throw scanner.fail(end, "trailing bytes") }
        }
        guard header["type"]?.string == Snapshot.type, header["seq"]?.int != nil, header["dataset"]?.string != nil,
              header["node"]?.string != nil, header["entries_root"]?.string != nil
        else { throw ManifestError.invalid("not a \(Snapshot.type) document") }
        // The ids a node's CLI allows, and no others: an id reaches URLs, DCAT and the catalogue.
        for key in ["node", "dataset"] where !Identifier.isValid(header[key]?.string ?? "") {
            throw ManifestError.invalid("the \(key) id is not 1-128 of A-Z a-z 0-9 . _ - (nor starts with . or -)")
        }
        self.bytes = bytes
        self.header = header
        self.added = added
        self.signatureCut = signatureCut
        digest = "sha256:" + Hex.encode(SHA256.hash(data: bytes))
    }

    /// Checks the Ed25519 signature over the document without its `signature` member.
    public func signatureIsValid(for key: Curve25519.Signing.PublicKey) -> Bool {
        guard let signatureCut, let signature = header["signature"], signature["alg"]?.string == "EdDSA",
              let text = signature["sig"]?.string, let signatureBytes = Base64URL.decode(text)
        else { return false }
        var signed = [UInt8]()
        signed.reserveCapacity(bytes.count - signatureCut.count)
        signed += bytes[..<signatureCut.lowerBound]
        signed += bytes[signatureCut.upperBound...]
        return key.isValidSignature(signatureBytes, for: signed)
    }

    /// The string values of `keys` in the added entry at `range` (nil where absent or not a
    /// string); fails if the entry is not an object.
    public func strings(inEntry range: Range<Int>, keys: [StaticString]) throws -> [String?] {
        try bytes.withUnsafeBufferPointer { buffer in
            let scanner = CanonicalScanner(buffer)
            var values = [String?](repeating: nil, count: keys.count)
            _ = try scanner.object(at: range.lowerBound, depth: 2) { key, valueStart in
                let end = try scanner.value(at: valueStart, depth: 3)
                if buffer[valueStart] == UInt8(ascii: "\""), let index = keys.firstIndex(where: { scanner.key(key, is: $0) }) {
                    values[index] = try scanner.decodedString(valueStart..<end)
                }
                return end
            }
            return values
        }
    }
}
