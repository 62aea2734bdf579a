import CairnFoundation
@testable import CairnManifest
@testable import CairnNode
@testable import CairnStore
import Crypto
import Foundation
import GRDB
import Testing

/// A fresh store with a dataset `ct` that accepts any file, removed afterwards.
func withDataset(_ body: (BlobStore) throws -> Void) throws {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-manifest-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: root) }
    let store = try BlobStore.initialize(at: root)
    try store.createDataset(id: "ct", title: "CT", deidPolicy: .accept)
    try body(store)
}

@Suite struct PublisherTests {
    @Test func deltasFollowTheDataset() throws {
        try withDataset { store in
            let key = Curve25519.Signing.PrivateKey()
            let publisher = Publisher(store: store, nodeID: "n1", key: key, keyID: "k")
            let first = try store.put(bytes: Array("one".utf8), dataset: "ct").blob.digest
            _ = try store.put(bytes: Array("two".utf8), dataset: "ct")
            guard case .published(let s1) = try publisher.publish("ct") else { Issue.record("not published"); return }
            #expect(s1.seq == 1 && s1.parent == nil && s1.added.count == 2 && s1.removed.isEmpty)
            guard case .unchanged(let same) = try publisher.publish("ct") else { Issue.record("republished"); return }
            #expect(same.digest == s1.digest)
            _ = try store.put(bytes: Array("three".utf8), dataset: "ct")
            try store.index.write { db in
                try db.execute(sql: "DELETE FROM dataset_blobs WHERE dataset_id = 'ct' AND digest = ?", arguments: [first.hex])
            }
            guard case .published(let s2) = try publisher.publish("ct") else { Issue.record("not published"); return }
            #expect(s2.seq == 2 && s2.parent == s1.digest)
            #expect(s2.added.count == 1 && s2.removed == [first.description])
            #expect(s2.document["entries"]?.int == 2)
            #expect(try store.latestSnapshot(of: "ct")?.document == s2.canonicalBytes)
            #expect(try ReceivedSnapshot(canonical: s2.canonicalBytes).signatureIsValid(for: key.publicKey))
        }
    }
}

@Suite struct PublisherWalkTests {
    /// Publishes after random additions and removals with pages of 3, so the side-by-side walk of
    /// current and published entries crosses page boundaries on both sides: each delta equals the
    /// set difference, and the root is the root of the dataset's entries computed separately.
    @Test func pagedWalkMatchesASetModel() throws {
        try withDataset { store in
            var publisher = Publisher(store: store, nodeID: "n1", key: Curve25519.Signing.PrivateKey(), keyID: "k")
            publisher.pageSize = 3
            var rng = SystemRandomNumberGenerator()
            var current = Set<String>(), published = Set<String>()
            for round in 0..<10 {
                for _ in 0..<Int.random(in: 0...8, using: &rng) {
                    let blob = try store.put(bytes: (0..<24).map { _ in UInt8.random(in: 0...255, using: &rng) }, dataset: "ct").blob
                    current.insert(blob.digest.description)
                }
                for digest in current.shuffled(using: &rng).prefix(Int.random(in: 0...4, using: &rng)) {
                    try store.index.write { db in
                        try db.execute(sql: "DELETE FROM dataset_blobs WHERE dataset_id = 'ct' AND digest = ?",
                                       arguments: [BlobDigest(parsing: digest)!.hex])
                    }
                    current.remove(digest)
                }
                switch try publisher.publish("ct") {
                case .unchanged:
                    #expect(current == published, "round \(round)")
                case .published(let snapshot):
                    #expect(Set(snapshot.added.compactMap { $0["digest"]?.string }) == current.subtracting(published), "round \(round)")
                    #expect(snapshot.removed == current.symmetricDifference(published).intersection(published).sorted(), "round \(round)")
                    #expect(snapshot.document["entries"]?.int == Int64(current.count))
                    var leaves: [UInt8] = []
                    for listed in try store.list(dataset: "ct") {
                        Merkle.appendLeafHash(of: ManifestEntry.make(listed, attributes: ManifestAttribute.defaults).canonicalBytes(), to: &leaves)
                    }
                    #expect(snapshot.entriesRoot == Merkle.root(leaves: leaves), "round \(round)")
                    published = current
                }
            }
        }
    }
}
