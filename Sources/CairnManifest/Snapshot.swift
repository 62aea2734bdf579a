import CairnStore
import Crypto
import Foundation

/// An immutable, signed, content-addressed version of a dataset (DESIGN.md "Datasets, snapshots,
/// manifests"). The node signs the canonical bytes of the document without its `signature`
/// member; the snapshot's digest is the SHA-256 of the canonical bytes of the whole document.
public struct Snapshot: Sendable {
    public static let type = "cairn.snapshot/v1"

    public let document: JSONValue
    public let canonicalBytes: [UInt8]
    public let digest: String

    public var node: String { document["node"]?.string ?? "" }
    public var dataset: String { document["dataset"]?.string ?? "" }
    public var seq: Int64 { document["seq"]?.int ?? 0 }
    public var parent: String? { document["parent"]?.string }
    public var entriesRoot: String { document["entries_root"]?.string ?? "" }
    public var added: [JSONValue] { document["added"]?.array ?? [] }
    public var removed: [String] { document["removed"]?.array?.compactMap(\.string) ?? [] }
    public var keyID: String? { document["signature"]?["kid"]?.string }

    /// Builds and signs the next snapshot. `entries` is the dataset's whole published state after
    /// this snapshot, sorted by digest; `added` and `removed` the change from the parent.
    public static func make(node: String, dataset: String, metadata: [String: JSONValue], seq: Int64, parent: String?,
                            entries: [(digest: String, entry: JSONValue)], added: [JSONValue], removed: [String],
                            key: Curve25519.Signing.PrivateKey, keyID: String, createdAt: Date = Date()) throws -> Snapshot {
        let leaves = entries.map { Merkle.leafHash($0.entry.canonicalBytes()) }
        var body: [String: JSONValue] = [
            "type": .string(type), "node": .string(node), "dataset": .string(dataset), "seq": .int(seq),
            "parent": parent.map(JSONValue.string) ?? .null, "metadata": .object(metadata),
            "added": .array(added), "removed": .array(removed.map(JSONValue.string)),
            "summary": summary(of: entries.map(\.entry)), "entries": .int(Int64(entries.count)),
            "entries_root": .string(Merkle.root(leaves: leaves)),
            "created_at": .string(ISO8601DateFormatter().string(from: createdAt)),
        ]
        let signature = try key.signature(for: JSONValue.object(body).canonicalBytes())
        body["signature"] = .object(["alg": .string("EdDSA"), "kid": .string(keyID),
                                     "sig": .string(Base64URL.encode(signature))])
        return Snapshot(document: .object(body))
    }

    public init(document: JSONValue) {
        self.document = document
        canonicalBytes = document.canonicalBytes()
        digest = "sha256:" + Hex.encode(SHA256.hash(data: canonicalBytes))
    }

    /// Parses a received document; its digest is recomputed from its canonical form.
    public init(parsing bytes: some DataProtocol) throws {
        let document = try JSONValue.parse(bytes)
        guard document["type"]?.string == Self.type, document["seq"]?.int != nil, document["dataset"]?.string != nil,
              document["node"]?.string != nil, document["entries_root"]?.string != nil
        else { throw StoreError.invalidArgument("not a \(Self.type) document") }
        self.init(document: document)
    }

    /// Checks the Ed25519 signature over the document without its `signature` member.
    public func signatureIsValid(for key: Curve25519.Signing.PublicKey) -> Bool {
        guard case .object(var body) = document, let signature = body.removeValue(forKey: "signature"),
              signature["alg"]?.string == "EdDSA", let text = signature["sig"]?.string, let bytes = Base64URL.decode(text)
        else { return false }
        return key.isValidSignature(bytes, for: Self.bytesWithoutMember("signature", value: signature, of: canonicalBytes)
            ?? JSONValue.object(body).canonicalBytes())
    }

    /// The canonical bytes of a document without one top-level member, cut out of the document's
    /// canonical bytes instead of serialising it again (a million-entry snapshot is 300 MB). The
    /// member `,"key":value` cannot occur inside a string (its quotes would be escaped), and nil
    /// is returned unless it occurs exactly once.
    static func bytesWithoutMember(_ key: String, value: JSONValue, of document: [UInt8]) -> [UInt8]? {
        let needle = Array(",\"\(key)\":".utf8) + value.canonicalBytes()
        var found: Int?
        var index = 0
        let first = needle[0], last = document.count - needle.count
        while index <= last {
            if document[index] == first, document[index..<(index + needle.count)].elementsEqual(needle) {
                if found != nil { return nil }
                found = index
                index += needle.count
            } else {
                index += 1
            }
        }
        guard let start = found else { return nil }
        return Array(document[..<start]) + Array(document[(start + needle.count)...])
    }

    /// Counts over the published entries: what the hub's catalogue shows without the entries.
    static func summary(of entries: [JSONValue]) -> JSONValue {
        var subjects = Set<String>(), studies = Set<String>(), series = Set<String>()
        var instances: Int64 = 0, bytes: Int64 = 0
        var breakdowns: [String: [String: Int64]] = ["modality": [:], "body_part": [:], "manufacturer": [:], "sex": [:]]
        for entry in entries {
            bytes += entry["size"]?.int ?? 0
            if let value = entry["subject"]?.string { subjects.insert(value) }
            if let value = entry["study_uid"]?.string { studies.insert(value) }
            if let value = entry["series_uid"]?.string { series.insert(value) }
            if entry["sop_instance_uid"] != nil { instances += 1 }
            for key in breakdowns.keys {
                if let value = entry[key]?.string { breakdowns[key]![value, default: 0] += 1 }
            }
        }
        var members: [String: JSONValue] = [
            "subjects": .int(Int64(subjects.count)), "studies": .int(Int64(studies.count)),
            "series": .int(Int64(series.count)), "instances": .int(instances), "bytes": .int(bytes),
        ]
        for (key, counts) in breakdowns { members["by_" + key] = .object(counts.mapValues(JSONValue.int)) }
        return .object(members)
    }
}
