import CairnFoundation
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

    /// Builds and signs the next snapshot. `leaves` are the leaf hashes of the dataset's whole
    /// published state after this snapshot, in digest order, and `summary` was fed every entry of
    /// it; `added` and `removed` are the change from the parent.
    public static func make(node: String, dataset: String, metadata: [String: JSONValue], seq: Int64, parent: String?,
                            leaves: [UInt8], summary: SnapshotSummary, added: [JSONValue], removed: [String],
                            key: Curve25519.Signing.PrivateKey, keyID: String, createdAt: Date = Date()) throws -> Snapshot {
        var body: [String: JSONValue] = [
            "type": .string(type), "node": .string(node), "dataset": .string(dataset), "seq": .int(seq),
            "parent": parent.map(JSONValue.string) ?? .null, "metadata": .object(metadata),
            "added": .array(added), "removed": .array(removed.map(JSONValue.string)),
            "summary": summary.json, "entries": .int(Int64(leaves.count / Merkle.hashSize)),
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
}

/// Counts over a dataset's published entries, fed one entry at a time: what the hub's catalogue
/// shows without the entries.
public struct SnapshotSummary: Sendable {
    private var subjects = Set<String>(), studies = Set<String>(), series = Set<String>()
    private var instances: Int64 = 0, bytes: Int64 = 0
    private var breakdowns: [String: [String: Int64]] = ["modality": [:], "body_part": [:], "manufacturer": [:], "sex": [:]]

    public init() {}

    public mutating func add(_ entry: JSONValue) {
        bytes += entry["size"]?.int ?? 0
        if let value = entry["subject"]?.string { subjects.insert(value) }
        if let value = entry["study_uid"]?.string { studies.insert(value) }
        if let value = entry["series_uid"]?.string { series.insert(value) }
        if entry["sop_instance_uid"] != nil { instances += 1 }
        for key in breakdowns.keys {
            if let value = entry[key]?.string { breakdowns[key]![value, default: 0] += 1 }
        }
    }

    public var json: JSONValue {
        var members: [String: JSONValue] = [
            "subjects": .int(Int64(subjects.count)), "studies": .int(Int64(studies.count)),
            "series": .int(Int64(series.count)), "instances": .int(instances), "bytes": .int(bytes),
        ]
        for (key, counts) in breakdowns { members["by_" + key] = .object(counts.mapValues(JSONValue.int)) }
        return .object(members)
    }
}
