import CairnFoundation
import CairnManifest
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
    /// Entries read per query, current and published alike.
    public var pageSize = 10_000

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

    /// Walks the dataset's current entries and the published ones side by side, both in digest
    /// order a page at a time: what differs is the delta, and every current entry feeds the leaf
    /// hashes and the summary. Memory holds the delta, not two copies of the dataset.
    public func publish(_ dataset: String) throws -> Outcome {
        guard let info = try store.dataset(dataset) else { throw StoreError.invalidArgument("dataset '\(dataset)' does not exist") }
        let attributes = try store.manifestAttributes(of: dataset).map(ManifestAttribute.parseList) ?? ManifestAttribute.defaults
        var published = PublishedEntries(store: store, dataset: dataset, pageSize: pageSize)
        var leaves: [UInt8] = []
        var summary = SnapshotSummary()
        var added: [(digest: String, entry: JSONValue, bytes: [UInt8])] = []
        var removed: [String] = []
        var after: BlobDigest?
        while true {
            let page = try store.list(dataset: dataset, after: after, limit: pageSize)
            guard let last = page.last else { break }
            for listed in page {
                let digest = listed.record.digest.description
                let entry = ManifestEntry.make(listed, attributes: attributes)
                let bytes = entry.canonicalBytes()
                while let gone = try published.next(before: digest) { removed.append(gone) }
                if try published.take(digest) != bytes { added.append((digest, entry, bytes)) }
                Merkle.appendLeafHash(of: bytes, to: &leaves)
                summary.add(entry)
            }
            after = last.record.digest
        }
        while let gone = try published.next(before: nil) { removed.append(gone) }
        var metadata: [String: JSONValue] = ["deid_policy": .string(info.deidPolicy.rawValue)]
        // What the gate verifies, so a reader of the catalogue knows which Basic Profile options
        // the data was admitted under (the pseudonym pattern stays on the node).
        if info.deidPolicy == .reject {
            let policy = info.deidentification
            metadata["deid_options"] = .array(policy.acceptedOptions.sorted().map { .string($0.rawValue) })
            if policy.allowEmbeddedDocuments { metadata["deid_allows_embedded_documents"] = .bool(true) }
            if policy.allowUnstatedBurnedInAnnotation { metadata["deid_allows_unstated_burned_in"] = .bool(true) }
            if !policy.reviewText { metadata["deid_text_unreviewed"] = .bool(true) }
        }
        if let title = info.title { metadata["title"] = .string(title) }
        if let description = info.description { metadata["description"] = .string(description) }
        if let cancerType = info.cancerType { metadata["cancer_type"] = .string(cancerType) }
        // The hub's federated search counts only what the provider made searchable, under its diagnosis.
        if info.searchable { metadata["searchable"] = .bool(true) }
        if let diagnosis = info.diagnosis { metadata["diagnosis"] = .string(diagnosis) }
        let latest = try store.latestSnapshot(of: dataset)
        // A changed description (title, searchable, diagnosis) is news too, even with the same entries.
        if let latest, added.isEmpty, removed.isEmpty,
           (try? JSONValue.parse(latest.document))?["metadata"] == .object(metadata) {
            return .unchanged(latest)
        }
        let snapshot = try Snapshot.make(node: nodeID, dataset: dataset, metadata: metadata, seq: (latest?.seq ?? 0) + 1,
                                         parent: latest?.digest, leaves: leaves, summary: summary,
                                         added: added.map(\.entry), removed: removed, key: key, keyID: keyID)
        try store.commitSnapshot(StoredSnapshot(dataset: dataset, seq: snapshot.seq, digest: snapshot.digest,
                                                parent: snapshot.parent, document: snapshot.canonicalBytes,
                                                entries: leaves.count / Merkle.hashSize),
                                 added: added.map { ($0.digest, $0.bytes) }, removed: removed)
        return .published(snapshot)
    }
}

/// The published entries of a dataset read in digest order, a page at a time, alongside the
/// current ones.
private struct PublishedEntries {
    let store: BlobStore
    let dataset: String
    let pageSize: Int
    private var page: [(digest: String, entry: [UInt8])] = []
    private var index = 0
    private var exhausted = false

    init(store: BlobStore, dataset: String, pageSize: Int) {
        self.store = store
        self.dataset = dataset
        self.pageSize = pageSize
    }

    private mutating func peek() throws -> (digest: String, entry: [UInt8])? {
        if index == page.count, !exhausted {
            page = try store.publishedEntries(of: dataset, after: page.last?.digest, limit: pageSize)
            index = 0
            exhausted = page.isEmpty
        }
        return index < page.count ? page[index] : nil
    }

    /// The next published digest that sorts before `digest` (any, when nil): no longer current.
    mutating func next(before digest: String?) throws -> String? {
        guard let head = try peek(), digest.map({ head.digest < $0 }) ?? true else { return nil }
        index += 1
        return head.digest
    }

    /// The published bytes of `digest`, consumed, or nil when it was not published.
    mutating func take(_ digest: String) throws -> [UInt8]? {
        guard let head = try peek(), head.digest == digest else { return nil }
        index += 1
        return head.entry
    }
}
