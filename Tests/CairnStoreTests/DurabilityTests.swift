import Foundation
import Testing
import CairnBlobs
@testable import CairnStore

@Suite struct DurabilityTests {
    @Test func duplicateContentIsStoredOnce() throws {
        let temp = try TempStore()
        defer { temp.cleanup() }
        let bytes = Bytes.imageLike(100_000, seed: 5)
        let first = try temp.store.put(bytes: bytes)
        let second = try temp.store.put(bytes: bytes, options: .init(codec: .lz4))
        #expect(!first.deduplicated)
        #expect(second.deduplicated)
        #expect(try temp.store.stats().blobs == 1)
        #expect(try temp.store.record(first.blob.digest)?.codec == .zstd)
    }

    /// Writers of the same bytes in different codecs race for the blob path: whichever file ends
    /// up there, its index row must describe it (codec, size), on every round.
    @Test func concurrentWritersOfTheSameContentAllSucceed() throws {
        let temp = try TempStore()
        defer { temp.cleanup() }
        let store = temp.store
        for round in 0..<25 {
            let bytes = Bytes.imageLike(300_000, seed: UInt64(100 + round))
            let outcomes = Mutex2<[Bool]>([])
            WorkerPool.forEach(count: 12, jobs: 6) { index in
                let codec: CodecChoice = [.zstd, .lz4, .raw][index % 3]
                let result = try? store.put(bytes: bytes, options: .init(codec: codec))
                outcomes.mutate { $0.append(result != nil) }
            }
            #expect(outcomes.value.count == 12 && outcomes.value.allSatisfy { $0 })
            let digest = BlobDigest.of(bytes)
            #expect(try store.reader(digest).bytes(0..<300_000) == bytes, "round \(round)")
            #expect(try store.verifyBlob(digest) == nil, "round \(round)")
        }
        #expect(try store.stats().blobs == 25)
        #expect(try FileSystem.list(store.tmpRoot).isEmpty)
    }

    @Test func aFlippedByteIsReportedWithDigestAndFrame() throws {
        let temp = try TempStore(frameSize: 65_536)
        defer { temp.cleanup() }
        let bytes = Bytes.imageLike(400_000, seed: 8)
        let digest = try temp.store.put(bytes: bytes, options: .init(codec: .zstd)).blob.digest
        let path = temp.store.path(of: digest)
        let reader = try temp.store.reader(digest)
        // Find frame 2's compressed bytes through a fresh table read, then damage its middle.
        let data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let table = try SeekTable.parse(Array(data.suffix(try SeekTable.tableSize(fromFooter: Array(data.suffix(9))))))
        try flipByte(at: table.compressedOffsets[2] + UInt64(table.entries[2].compressedSize / 2), in: path)
        let damaged = try temp.store.reader(digest)
        #expect(throws: StoreError.corruptFrame(digest, frame: 2, path: path)) { try damaged.bytes(0..<400_000) }
        #expect(try damaged.bytes(0..<65_536) == Array(bytes[0..<65_536]))
        let problem = try temp.store.verifyBlob(digest)
        #expect(problem?.state == .corrupt)
        #expect(problem?.detail.contains(digest.hex) == true)
        #expect(try temp.store.record(digest)?.state == .corrupt)
        _ = reader
        // Ingesting the same bytes again repairs the blob.
        let repaired = try temp.store.put(bytes: bytes)
        #expect(!repaired.deduplicated)
        #expect(try temp.store.verifyBlob(digest) == nil)
    }

    @Test func aRawBlobWithAFlippedByteFailsVerify() throws {
        let temp = try TempStore()
        defer { temp.cleanup() }
        let digest = try temp.store.put(bytes: Bytes.random(10_000, seed: 1), options: .init(codec: .raw)).blob.digest
        try flipByte(at: 5_000, in: temp.store.path(of: digest))
        let problem = try temp.store.verifyBlob(digest)
        #expect(problem?.state == .corrupt)
    }

    @Test func aDeletedBlobIsReportedMissingAndCanBeRestored() throws {
        let temp = try TempStore()
        defer { temp.cleanup() }
        let bytes = Bytes.imageLike(50_000, seed: 2)
        let digest = try temp.store.put(bytes: bytes).blob.digest
        unlink(temp.store.path(of: digest))
        #expect(throws: StoreError.missing(digest, path: temp.store.path(of: digest))) { try temp.store.reader(digest) }
        #expect(try temp.store.verifyBlob(digest)?.state == .missing)
        #expect(try temp.store.stats().missing == 1)
        #expect(try !temp.store.put(bytes: bytes).deduplicated)
        #expect(try temp.store.reader(digest).bytes(0..<50_000) == bytes)
        #expect(try temp.store.stats().missing == 0)
    }

    @Test func startUpRemovesWhatCrashedWritersLeft() throws {
        let temp = try TempStore()
        defer { temp.cleanup() }
        let store = temp.store
        // A writer that died while writing.
        _ = FileManager.default.createFile(atPath: store.tmpRoot + "/dead.partial", contents: Data([1, 2, 3]))
        // A writer that died after linking its blob but before the index commit.
        let bytes = Bytes.imageLike(10_000, seed: 11)
        let digest = BlobDigest.of(bytes)
        let ready = store.tmpRoot + "/\(digest.hex).dead.ready"
        _ = FileManager.default.createFile(atPath: ready, contents: Data(bytes))
        try FileManager.default.createDirectory(atPath: store.directory(of: digest), withIntermediateDirectories: true)
        #expect(link(ready, store.path(of: digest)) == 0)
        // A live writer holds a lock on its temp file: it must survive.
        let live = try PosixFile.createExclusive(store.tmpRoot + "/live.partial")
        #expect(live.tryLockExclusive())

        let reopened = try BlobStore.open(at: temp.root)
        #expect(try FileSystem.list(store.tmpRoot) == ["live.partial"])
        #expect(!FileSystem.exists(store.path(of: digest)))
        #expect(try reopened.record(digest) == nil)
        withExtendedLifetime(live) {}
    }

    @Test func startUpKeepsCommittedBlobsWhoseTempOutlivedTheCrash() throws {
        let temp = try TempStore()
        defer { temp.cleanup() }
        let bytes = Bytes.imageLike(10_000, seed: 12)
        let digest = try temp.store.put(bytes: bytes).blob.digest
        let ready = temp.store.tmpRoot + "/\(digest.hex).dead.ready"
        #expect(link(temp.store.path(of: digest), ready) == 0)
        let reopened = try BlobStore.open(at: temp.root)
        #expect(try FileSystem.list(temp.store.tmpRoot).isEmpty)
        #expect(try reopened.reader(digest).bytes(0..<10_000) == bytes)
    }

    @Test func openingAMissingStoreSaysSo() {
        #expect(throws: StoreError.notInitialized(path: "/nonexistent/cairn")) { try BlobStore.open(at: "/nonexistent/cairn") }
    }

    @Test func unknownDatasetsAreRefused() throws {
        let temp = try TempStore()
        defer { temp.cleanup() }
        #expect(throws: StoreError.self) { try temp.store.put(bytes: [1], dataset: "nope") }
        #expect(throws: StoreError.self) { try temp.store.createDataset(id: "../etc", title: nil) }
        try temp.store.createDataset(id: "lung-ct_2024.v1", title: "Lung")
        #expect(try temp.store.put(bytes: [1], dataset: "lung-ct_2024.v1").blob.size == 1)
        #expect(try FileSystem.list(temp.store.tmpRoot).isEmpty)
    }
}

/// A lock-protected value for collecting results from worker threads in tests.
final class Mutex2<Value>: @unchecked Sendable {
    private var stored: Value
    private let lock = NSLock()
    init(_ value: Value) { stored = value }
    func mutate(_ body: (inout Value) -> Void) { lock.lock(); body(&stored); lock.unlock() }
    var value: Value { lock.lock(); defer { lock.unlock() }; return stored }
}
