import Foundation
import Testing
@testable import CairnStore

@Suite struct GarbageCollectionTests {
    @Test func collectsOnlyUnreferencedBlobs() throws {
        let temp = try TempStore()
        defer { temp.cleanup() }
        let kept = try temp.store.put(bytes: Bytes.imageLike(20_000, seed: 1)).blob.digest
        let dropped = try temp.store.put(bytes: Bytes.imageLike(20_000, seed: 2)).blob.digest
        try temp.store.index.write { db in
            try db.execute(sql: "DELETE FROM dataset_blobs WHERE digest = ?", arguments: [dropped.hex])
        }
        let dry = try temp.store.collectGarbage(dryRun: true)
        #expect(dry.unreferenced == [dropped])
        #expect(FileSystem.exists(temp.store.path(of: dropped)))
        let real = try temp.store.collectGarbage(dryRun: false)
        #expect(real.unreferenced == [dropped])
        #expect(real.bytesFreed > 0)
        #expect(!FileSystem.exists(temp.store.path(of: dropped)))
        #expect(try temp.store.record(dropped) == nil)
        #expect(try temp.store.verifyBlob(kept) == nil)
        // The collected content can be stored again.
        #expect(try !temp.store.put(bytes: Bytes.imageLike(20_000, seed: 2)).deduplicated)
    }

    @Test func removesOnlyStaleOrphanFiles() throws {
        let temp = try TempStore()
        defer { temp.cleanup() }
        let stale = BlobDigest.of([1, 2, 3]), fresh = BlobDigest.of([4, 5, 6])
        for digest in [stale, fresh] {
            try FileManager.default.createDirectory(atPath: temp.store.directory(of: digest), withIntermediateDirectories: true)
            _ = FileManager.default.createFile(atPath: temp.store.path(of: digest), contents: Data([9]))
        }
        let old = Date().addingTimeInterval(-2 * BlobStore.orphanGracePeriod)
        try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: temp.store.path(of: stale))
        let report = try temp.store.collectGarbage(dryRun: false)
        #expect(report.orphanFiles == [temp.store.path(of: stale)])
        #expect(!FileSystem.exists(temp.store.path(of: stale)))
        #expect(FileSystem.exists(temp.store.path(of: fresh)))
    }

    @Test func twoCollectorsNeverRunAtOnce() throws {
        let temp = try TempStore()
        defer { temp.cleanup() }
        try temp.store.index.write { db in
            try db.execute(sql: "INSERT INTO settings(key, value) VALUES ('gc_lease', ?)",
                           arguments: ["other \(Date().timeIntervalSince1970 + 60)"])
        }
        #expect(throws: StoreError.self) { try temp.store.collectGarbage(dryRun: true) }
    }
}
