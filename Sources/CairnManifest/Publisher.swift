import CairnStore
import Crypto
import Foundation

/// `cairn dataset publish`: the next snapshot of a dataset from its current entries and the state
/// last published, signed with the node key, stored with the moved state in one transaction.
public struct Publisher: Sendable {
    public let store: BlobStore
    public let nodeID: String
    public let key: Curve25519.Signing.PrivateKey
    public let keyID: String

    public init(store: BlobStore, nodeID: String, key: Curve25519.Signing.PrivateKey, keyID: String) {
        self.store = store
        self.nodeID = nodeID
        self.key = key
        self.keyID = keyID
    }

    public enum Outcome: Sendable {
        case published(Snapshot)
        /// Nothing changed since the latest snapshot, which stays the head.
        case unchanged(StoredSnapshot)
    }

    public func publish(_ dataset: String) throws -> Outcome {
        guard let info = try store.dataset(dataset) else { throw StoreError.invalidArgument("dataset '\(dataset)' does not exist") }
        let attributes = try store.manifestAttributes(of: dataset).map(ManifestAttribute.parseList) ?? ManifestAttribute.defaults
        var current: [(digest: String, entry: JSONValue, bytes: [UInt8])] = []
        var after: BlobDigest?
        while true {
            let page = try store.list(dataset: dataset, after: after, limit: 10_000)
            guard let last = page.last else { break }
            for listed in page {
                let entry = ManifestEntry.make(listed, attributes: attributes)
                current.append((listed.record.digest.description, entry, entry.canonicalBytes()))
            }
            after = last.record.digest
        }
        let published = try store.publishedEntries(of: dataset)
        let currentDigests = Set(current.map(\.digest))
        let added = current.filter { published[$0.digest] != $0.bytes }
        let removed = published.keys.filter { !currentDigests.contains($0) }.sorted()
        let latest = try store.latestSnapshot(of: dataset)
        if let latest, added.isEmpty, removed.isEmpty { return .unchanged(latest) }
        var metadata: [String: JSONValue] = ["deid_policy": .string(info.deidPolicy.rawValue)]
        if let title = info.title { metadata["title"] = .string(title) }
        if let description = info.description { metadata["description"] = .string(description) }
        if let cancerType = info.cancerType { metadata["cancer_type"] = .string(cancerType) }
        let snapshot = try Snapshot.make(node: nodeID, dataset: dataset, metadata: metadata, seq: (latest?.seq ?? 0) + 1,
                                         parent: latest?.digest, entries: current.map { ($0.digest, $0.entry) },
                                         added: added.map(\.entry), removed: removed, key: key, keyID: keyID)
        try store.commitSnapshot(StoredSnapshot(dataset: dataset, seq: snapshot.seq, digest: snapshot.digest,
                                                parent: snapshot.parent, document: snapshot.canonicalBytes,
                                                entries: current.count),
                                 added: added.map { ($0.digest, $0.bytes) }, removed: removed)
        return .published(snapshot)
    }
}
