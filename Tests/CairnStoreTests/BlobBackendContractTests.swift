import CairnFoundation
import CairnIndex
import CairnObjectStore
import CairnTestSupport
import Crypto
import Foundation
import GRDB
import Synchronization
import Testing
@testable import CairnStore

/// What every blob backend must do, run against the local filesystem and against S3 (Ceph RGW,
/// started by Tools/test.sh, which sets CAIRN_TEST_S3_ENDPOINT and AWS_* and requires the S3 runs
/// with CAIRN_REQUIRE_S3=1; without them, as in a plain `swift test`, the S3 runs are skipped),
/// and again with the index on PostgreSQL (CAIRN_TEST_PG_URL, from Tools/postgres.sh; required
/// with CAIRN_REQUIRE_PG=1): the write, dedup and gc rules live in the index as much as in the blobs.
@Suite struct BlobBackendContractTests {
    enum Backend: String, CaseIterable, CustomStringConvertible {
        case files, s3
        /// Files, with the index on PostgreSQL.
        case postgres
        var description: String { rawValue }
    }

    /// A fresh store on `backend`, or nil when S3 is not available here (and not required).
    struct BackendStore {
        let root: String
        let store: BlobStore

        init?(_ backend: Backend) throws {
            root = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-contract-\(UUID().uuidString)").path
            var storage = StorageConfig()
            if backend == .s3 {
                let environment = ProcessInfo.processInfo.environment
                guard let endpoint = environment["CAIRN_TEST_S3_ENDPOINT"] else {
                    if environment["CAIRN_REQUIRE_S3"] == "1" { Issue.record("CAIRN_REQUIRE_S3=1 but CAIRN_TEST_S3_ENDPOINT is not set") }
                    return nil
                }
                storage = StorageConfig(blobs: .s3(bucket: "cairn-contract-" + UUID().uuidString.prefix(13).lowercased()),
                                        s3Endpoint: endpoint, s3AllowHTTP: true)
            }
            if backend == .postgres {
                guard let target = try PostgresTestDatabase.create() else { return nil }
                storage = StorageConfig(index: .postgres(target), indexAllowPlaintext: true)
            }
            store = try BlobStore.initialize(at: root, storage: storage)
            try store.createDataset(id: "other", title: nil)
        }

        func cleanup() { try? FileManager.default.removeItem(atPath: root) }

        /// Every blob row's digest.
        func digests() throws -> [BlobDigest] {
            try store.index.read { db in try String.fetchAll(db, sql: "SELECT digest FROM blobs").compactMap(BlobDigest.init(hex:)) }
        }

        /// The stored bytes of a blob, as its file or object holds them.
        func stored(_ digest: BlobDigest) throws -> [UInt8] {
            guard let client = store.objects else { return Array(try Data(contentsOf: URL(fileURLWithPath: store.path(of: digest)))) }
            guard let info = try client.head(BlobStore.objectKey(of: digest)) else { throw StoreError.missing(digest, path: "") }
            var bytes = [UInt8](repeating: 0, count: Int(info.size))
            try bytes.withUnsafeMutableBytes { try client.get(BlobStore.objectKey(of: digest), range: 0..<info.size, into: $0) }
            return bytes
        }

        /// Replaces a blob's stored bytes behind the store's back (damage, for tests).
        func replaceStored(_ digest: BlobDigest, with bytes: [UInt8]) throws {
            guard let client = store.objects else {
                let path = store.path(of: digest)
                chmod(path, 0o644)
                try Data(bytes).write(to: URL(fileURLWithPath: path))
                return
            }
            let temp = root + "/tmp/replacement"
            try Data(bytes).write(to: URL(fileURLWithPath: temp))
            let file = try PosixFile.openForReading(temp)
            try client.put(BlobStore.objectKey(of: digest), descriptor: file.fd, size: UInt64(bytes.count),
                           sha256Hex: Hex.encode(SHA256.hash(data: bytes)), md5: Array(Insecure.MD5.hash(data: bytes)))
        }

        func removeStored(_ digest: BlobDigest) throws {
            guard let client = store.objects else { return FileSystem.remove(store.path(of: digest)) }
            try client.delete(BlobStore.objectKey(of: digest))
        }

        func storedExists(_ digest: BlobDigest) throws -> Bool {
            guard let client = store.objects else { return FileSystem.exists(store.path(of: digest)) }
            return try client.head(BlobStore.objectKey(of: digest)) != nil
        }
    }

    /// Raw (incompressible), zstd-framed (image-like) and empty blobs: whole, 200 random ranges
    /// each, and suffixes, byte for byte.
    @Test(arguments: Backend.allCases) func wholeRangesAndSuffixesReadBackExactly(_ backend: Backend) throws {
        guard let temp = try BackendStore(backend) else { return }
        defer { temp.cleanup() }
        let seed = UInt64.random(in: 0...UInt64.max)
        print("wholeRangesAndSuffixesReadBackExactly(\(backend)) seed \(seed)")
        var rng = SeededRandom(seed: seed)
        let inputs = [Bytes.random(300_000, seed: seed), Bytes.imageLike(1_000_000 + Int(seed % 1000), seed: seed), []]
        for bytes in inputs {
            let put = try temp.store.put(bytes: bytes)
            #expect(!put.deduplicated)
            let reader = try temp.store.reader(put.blob.digest)
            #expect(reader.size == UInt64(bytes.count))
            #expect(try reader.bytes(0..<reader.size) == bytes)
            guard !bytes.isEmpty else { continue }
            for _ in 0..<200 {
                let start = UInt64.random(in: 0..<UInt64(bytes.count), using: &rng)
                let end = UInt64.random(in: start...min(UInt64(bytes.count), start + 200_000), using: &rng)
                #expect(try reader.bytes(start..<end) == Array(bytes[Int(start)..<Int(end)]), "range \(start)..<\(end) seed \(seed)")
            }
            for suffix in [1, 9, 4096, 65_537, bytes.count] where suffix <= bytes.count {
                let size = UInt64(bytes.count)
                #expect(try reader.bytes((size - UInt64(suffix))..<size) == Array(bytes.suffix(suffix)), "suffix \(suffix) seed \(seed)")
            }
            #expect(throws: StoreError.self) { try reader.bytes(0..<(reader.size + 1)) }
        }
    }

    /// How the node streams: each chunk prefetched (for a bucket: one GET, the next one started
    /// ahead) and then read; chunks of every size, whole blobs and random ranges.
    @Test(arguments: Backend.allCases) func prefetchedStreamsReadBackExactly(_ backend: Backend) async throws {
        guard let temp = try BackendStore(backend) else { return }
        defer { temp.cleanup() }
        let seed = UInt64.random(in: 0...UInt64.max)
        print("prefetchedStreamsReadBackExactly(\(backend)) seed \(seed)")
        var rng = SeededRandom(seed: seed)
        for bytes in [Bytes.random(700_000, seed: seed), Bytes.imageLike(2_000_000, seed: seed &+ 1)] {
            let reader = try temp.store.reader(try temp.store.put(bytes: bytes).blob.digest)
            #expect(reader.readsOverNetwork == (backend == .s3))
            for _ in 0..<20 {
                let start = UInt64.random(in: 0..<reader.size, using: &rng)
                let end = UInt64.random(in: (start + 1)...reader.size, using: &rng)
                let minimum = UInt64.random(in: 1...300_000, using: &rng)
                var out: [UInt8] = []
                var position = start
                while position < end {
                    let chunkEnd = reader.chunkEnd(from: position, minimum: minimum, limit: end)
                    let next = chunkEnd < end ? chunkEnd..<reader.chunkEnd(from: chunkEnd, minimum: minimum, limit: end) : nil
                    try await reader.prefetch(position..<chunkEnd, next: next)
                    out += try reader.bytes(position..<chunkEnd)
                    position = chunkEnd
                }
                #expect(out == Array(bytes[Int(start)..<Int(end)]), "stream \(start)..<\(end) by \(minimum), seed \(seed)")
            }
        }
    }

    @Test(arguments: Backend.allCases) func aMissingBlobIsReportedMissing(_ backend: Backend) throws {
        guard let temp = try BackendStore(backend) else { return }
        defer { temp.cleanup() }
        for bytes in [Bytes.random(50_000, seed: 1), Bytes.imageLike(200_000, seed: 2)] {
            let digest = try temp.store.put(bytes: bytes).blob.digest
            try temp.removeStored(digest)
            #expect {
                try temp.store.reader(digest).bytes(0..<UInt64(bytes.count))
            } throws: { error in
                guard case StoreError.missing(let missing, _) = error else { return false }
                return missing == digest
            }
            #expect(try temp.store.verifyBlob(digest)?.state == .missing)
        }
    }

    /// Storing the bytes of a blob whose file or object went missing, or was replaced by another
    /// encoding of another size, repairs it, without verify having marked it first.
    @Test(arguments: Backend.allCases) func storingTheBytesAgainRepairsAMissingOrForeignBlob(_ backend: Backend) throws {
        guard let temp = try BackendStore(backend) else { return }
        defer { temp.cleanup() }
        let bytes = Bytes.imageLike(250_000, seed: 11)
        let digest = try temp.store.put(bytes: bytes, options: WriteOptions(codec: .zstd)).blob.digest
        try temp.removeStored(digest)
        #expect(try !temp.store.put(bytes: bytes, options: WriteOptions(codec: .lz4), name: "again").deduplicated)
        #expect(try temp.store.reader(digest).bytes(0..<UInt64(bytes.count)) == bytes)
        #expect(try temp.store.verifyBlob(digest) == nil)
        // Another encoding of the same bytes (zstd) deduplicates against the intact lz4 blob.
        #expect(try temp.store.put(bytes: bytes, options: WriteOptions(codec: .zstd), name: "third").deduplicated)
        #expect(try temp.store.record(digest)?.codec == .lz4)
        #expect(try temp.store.reader(digest).bytes(0..<UInt64(bytes.count)) == bytes)
    }

    @Test(arguments: Backend.allCases) func damagedBytesAreRefusedNeverServed(_ backend: Backend) throws {
        guard let temp = try BackendStore(backend) else { return }
        defer { temp.cleanup() }
        let raw = Bytes.random(50_000, seed: 3), framed = Bytes.imageLike(300_000, seed: 4)
        for bytes in [raw, framed] {
            let digest = try temp.store.put(bytes: bytes).blob.digest
            var stored = try temp.stored(digest)
            stored[stored.count / 3] ^= 0x5A
            try temp.replaceStored(digest, with: stored)
            #expect(try temp.store.verifyBlob(digest)?.state == .corrupt)
            if bytes == framed {
                // Framed blobs are checked frame by frame on every read, not only by verify.
                #expect(throws: StoreError.self) { try temp.store.reader(digest).bytes(0..<UInt64(bytes.count)) }
            }
        }
    }

    @Test(arguments: Backend.allCases) func sameBytesAreStoredOnce(_ backend: Backend) throws {
        guard let temp = try BackendStore(backend) else { return }
        defer { temp.cleanup() }
        let bytes = Bytes.imageLike(400_000, seed: 5)
        let first = try temp.store.put(bytes: bytes, name: "a")
        let second = try temp.store.put(bytes: bytes, dataset: "other", name: "b")
        #expect(!first.deduplicated && second.deduplicated)
        #expect(try temp.store.reader(first.blob.digest).bytes(0..<UInt64(bytes.count)) == bytes)
        #expect(try temp.digests().count == 1)
    }

    /// Eight writers store the same bytes at once: one blob, every write acknowledged, and it reads back.
    @Test(arguments: Backend.allCases) func concurrentWritersOfTheSameBytes(_ backend: Backend) throws {
        guard let temp = try BackendStore(backend) else { return }
        defer { temp.cleanup() }
        let bytes = Bytes.imageLike(700_000, seed: 6)
        let store = temp.store
        let acknowledged = Mutex(0)
        WorkerPool.forEach(count: 8, jobs: 8) { i in
            if (try? store.put(bytes: bytes, name: "copy-\(i)")) != nil { acknowledged.withLock { $0 += 1 } }
        }
        #expect(acknowledged.withLock { $0 } == 8)
        let blobs = try temp.digests()
        #expect(blobs.count == 1)
        let digest = try #require(blobs.first)
        #expect(try store.reader(digest).bytes(0..<UInt64(bytes.count)) == bytes)
        #expect(try store.verifyBlob(digest) == nil)
    }

    /// The same bytes twice in one commit batch (two names): one upload, the second a duplicate.
    @Test(arguments: Backend.allCases) func theSameBytesTwiceInOneBatch(_ backend: Backend) throws {
        guard let temp = try BackendStore(backend) else { return }
        defer { temp.cleanup() }
        let bytes = Bytes.imageLike(300_000, seed: 10)
        let staged = try ["a", "b"].map { name in
            try temp.store.stage(options: WriteOptions(), dataset: BlobStore.defaultDataset, name: name, cutPoints: []) { writer in
                try bytes.withUnsafeBytes { try writer.write($0) }
            }
        }
        let results = try temp.store.commit(staged).map { try $0.get() }
        #expect(results.map(\.deduplicated) == [false, true])
        #expect(try temp.digests().count == 1)
        #expect(try temp.store.reader(results[0].blob.digest).bytes(0..<UInt64(bytes.count)) == bytes)
        #expect(try temp.store.verifyBlob(results[0].blob.digest) == nil)
    }

    /// gc removes the stored bytes of what no dataset holds, and only those.
    @Test(arguments: Backend.allCases) func gcRemovesOnlyUnreferencedBlobs(_ backend: Backend) throws {
        guard let temp = try BackendStore(backend) else { return }
        defer { temp.cleanup() }
        let kept = try temp.store.put(bytes: Bytes.imageLike(100_000, seed: 7)).blob.digest
        let dropped = try temp.store.put(bytes: Bytes.imageLike(100_000, seed: 8)).blob.digest
        try temp.store.index.write { db in try db.execute(sql: "DELETE FROM dataset_blobs WHERE digest = ?", arguments: [dropped.hex]) }
        let report = try temp.store.collectGarbage(dryRun: false)
        #expect(report.unreferenced == [dropped])
        #expect(try !temp.storedExists(dropped))
        #expect(try temp.storedExists(kept))
        #expect(try temp.store.verifyBlob(kept) == nil)
        #expect(try temp.store.orphanFiles(olderThan: 0).isEmpty)
    }

    /// A blob whose object exists without a row (a writer that died between upload and commit) is
    /// an orphan until a write of the same bytes commits it.
    @Test(arguments: Backend.allCases) func anOrphanIsAdoptedByTheNextWriteOfItsBytes(_ backend: Backend) throws {
        guard let temp = try BackendStore(backend) else { return }
        defer { temp.cleanup() }
        let bytes = Bytes.imageLike(150_000, seed: 9)
        let digest = try temp.store.put(bytes: bytes).blob.digest
        try temp.store.index.write { db in
            try db.execute(sql: "DELETE FROM dataset_blobs WHERE digest = ?", arguments: [digest.hex])
            try db.execute(sql: "DELETE FROM blobs WHERE digest = ?", arguments: [digest.hex])
        }
        #expect(try temp.store.orphanFiles(olderThan: 0).count == 1)
        let again = try temp.store.put(bytes: bytes)
        #expect(!again.deduplicated)
        #expect(try temp.store.orphanFiles(olderThan: 0).isEmpty)
        #expect(try temp.store.reader(digest).bytes(0..<UInt64(bytes.count)) == bytes)
    }
}
