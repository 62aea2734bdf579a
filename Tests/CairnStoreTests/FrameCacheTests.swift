import CairnTestSupport
import Dispatch
import Foundation
import NIOCore
import Synchronization
import Testing
import CairnBlobs
@testable import CairnStore

@Suite struct FrameCacheTests {
    static func key(_ n: Int) -> FrameCache.Key {
        FrameCache.Key(digest: BlobDigest.of(Array("blob \(n / 1000)".utf8)), offset: UInt64(n % 1000) * 4096)
    }

    static func stored(_ bytes: [UInt8], codec: CodecChoice, in temp: TempStore) throws -> BlobRecord {
        try #require(try temp.store.record(try temp.store.put(bytes: bytes, options: .init(codec: codec)).blob.digest))
    }

    static func frame(_ n: Int, size: Int = 4096) -> ByteBuffer {
        ByteBuffer(repeating: UInt8(truncatingIfNeeded: n), count: size)
    }

    /// Any mix of lookups and insertions: the cache never holds more than its capacity, its
    /// counts match what it holds, and what it returns is what went in under that key.
    @Test func staysWithinItsBoundAndReturnsWhatWentIn() {
        let seed = UInt64.random(in: 0...UInt64.max)
        print("staysWithinItsBoundAndReturnsWhatWentIn seed \(seed)")
        var rng = SeededRandom(seed: seed)
        let cache = FrameCache(capacity: 1 << 20)
        for _ in 0..<20_000 {
            let n = Int(rng.next() % 3000)
            let size = 512 * (1 + Int(rng.next() % 16))
            if let found = cache.frame(Self.key(n), length: size) {
                #expect(found == Self.frame(n, size: size), "seed \(seed)")
            } else if rng.next() % 2 == 0 {
                cache.insert(Self.key(n), bytes: Self.frame(n, size: size))
            }
            let statistics = cache.statistics
            #expect(statistics.bytes <= cache.capacity, "seed \(seed)")
            #expect(statistics.bytes >= 0 && statistics.frames >= 0, "seed \(seed)")
        }
        let statistics = cache.statistics
        #expect(statistics.insertions - statistics.evictions == UInt64(statistics.frames), "seed \(seed)")
    }

    /// A frame asked for with another length (another encoding's frame boundaries) is a miss.
    @Test func aLengthMismatchIsAMiss() {
        let cache = FrameCache(capacity: 1 << 20)
        cache.insert(Self.key(1), bytes: Self.frame(1, size: 4096))
        #expect(cache.frame(Self.key(1), length: 4095) == nil)
        #expect(cache.frame(Self.key(1), length: 4096) == Self.frame(1, size: 4096))
    }

    /// S3-FIFO's promise: a working set read again and again survives one pass over ten times the
    /// cache's size that reads each frame once (where LRU would keep none of it).
    @Test func aSinglePassDoesNotFlushTheWorkingSet() {
        let cache = FrameCache(capacity: 16 << 20)
        let hot = (0..<1000).map { 1_000_000 + $0 }  // 4 MB of 4 KiB frames
        for _ in 0..<3 {
            for n in hot where cache.frame(Self.key(n), length: 4096) == nil { cache.insert(Self.key(n), bytes: Self.frame(n)) }
        }
        var hotHits = 0, hotLookups = 0
        for n in 0..<40_000 {  // 160 MB read once, the working set read every tenth step
            if cache.frame(Self.key(n), length: 4096) == nil { cache.insert(Self.key(n), bytes: Self.frame(n)) }
            if n % 10 == 0 {
                let h = hot[(n / 10) % hot.count]
                hotLookups += 1
                if cache.frame(Self.key(h), length: 4096) != nil { hotHits += 1 } else { cache.insert(Self.key(h), bytes: Self.frame(h)) }
            }
        }
        #expect(Double(hotHits) / Double(hotLookups) > 0.95, "\(hotHits) of \(hotLookups) working-set lookups hit")
    }

    /// Reads through the cache return the original bytes, whatever mix of cached and uncached
    /// frames a range touches, with a cache small enough to evict all the time; a range read
    /// twice is decoded once.
    @Test(arguments: [CodecChoice.zstd, .lz4])
    func readsThroughTheCacheAreExact(codec: CodecChoice) throws {
        let seed = UInt64.random(in: 0...UInt64.max)
        print("readsThroughTheCacheAreExact(\(codec)) seed \(seed)")
        let temp = try TempStore(frameSize: 4096, readCacheBytes: 256 << 10)
        defer { temp.cleanup() }
        var rng = SeededRandom(seed: seed)
        let originals = (0..<4).map { Bytes.imageLike(60_000 + Int(rng.next() % 100_000), seed: seed &+ UInt64($0)) }
        let records = try originals.map { try Self.stored($0, codec: codec, in: temp) }
        for _ in 0..<400 {
            let which = Int(rng.next() % UInt64(originals.count))
            let original = originals[which], record = records[which]
            let a = Int(rng.next() % UInt64(original.count))
            let b = min(original.count, a + 1 + Int(rng.next() % 30_000))
            let range = UInt64(a)..<UInt64(b)
            let reader = try temp.store.reader(for: record)
            switch rng.next() % 3 {
            case 0:
                #expect(try reader.bytes(range) == Array(original[a..<b]), "range \(range) seed \(seed)")
            case 1:
                var out = [UInt8](repeating: 0, count: b - a)
                try out.withUnsafeMutableBytes { try reader.read(range, into: $0) }
                #expect(out == Array(original[a..<b]), "range \(range) seed \(seed)")
            default:
                // From memory only when every frame is cached; then nothing is decoded.
                if let slices = temp.store.cachedFrames(of: record, range: range) {
                    #expect(slices.flatMap { Array($0.readableBytesView) } == Array(original[a..<b]), "range \(range) seed \(seed)")
                }
                continue
            }
            // The range's last frame, the newest in the cache, is served without decoding.
            let again = try temp.store.reader(for: record)
            _ = try again.bytes(range.upperBound - 1..<range.upperBound)
            #expect(again.framesDecompressed == 0, "the frame just read was decoded again; seed \(seed)")
        }
        #expect(temp.store.frameCache.statistics.bytes <= 256 << 10)
    }

    /// Every frame is checked when it is decoded: a damaged one raises and is never cached, so
    /// no later read is served from it either.
    @Test func damagedFramesNeverEnterTheCache() throws {
        let temp = try TempStore(frameSize: 65_536, readCacheBytes: 16 << 20)
        defer { temp.cleanup() }
        let original = Bytes.imageLike(400_000, seed: 9)
        let record = try Self.stored(original, codec: .zstd, in: temp)
        let path = temp.store.path(of: record.digest)
        try flipByte(at: 100, in: path)
        let reader = try temp.store.reader(for: record)
        #expect(throws: StoreError.self) { try reader.bytes(0..<1000) }
        #expect(temp.store.frameCache.statistics.frames == 0)
        #expect(temp.store.cachedFrames(of: record, range: 0..<1000) == nil)
        #expect(throws: StoreError.self) { try temp.store.reader(for: record).bytes(0..<1000) }
        // Frames after the damage decode and are kept; the damaged one still raises.
        #expect(try temp.store.reader(for: record).bytes(300_000..<300_100) == Array(original[300_000..<300_100]))
        #expect(temp.store.frameCache.statistics.frames == 1)
    }

    /// Readers on many threads share one cache and all read the original bytes.
    @Test func concurrentReadersAgree() throws {
        let seed = UInt64.random(in: 0...UInt64.max)
        print("concurrentReadersAgree seed \(seed)")
        let temp = try TempStore(frameSize: 8192, readCacheBytes: 512 << 10)
        defer { temp.cleanup() }
        let original = Bytes.imageLike(1_000_000, seed: seed)
        let record = try Self.stored(original, codec: .zstd, in: temp)
        let failures = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            var rng = SeededRandom(seed: seed &+ UInt64(worker))
            for _ in 0..<200 {
                let a = Int(rng.next() % UInt64(original.count)), b = min(original.count, a + 1 + Int(rng.next() % 50_000))
                let ok = (try? temp.store.reader(for: record).bytes(UInt64(a)..<UInt64(b))) == Array(original[a..<b])
                if !ok { failures.withLock { $0 += 1 } }
            }
        }
        #expect(failures.withLock { $0 } == 0, "seed \(seed)")
    }

    /// The read path's record map: this process's writes are seen at once, another connection's
    /// (another process: `cairn erase` while the node serves) within the recheck interval.
    @Test func recordMapFollowsTheIndex() throws {
        let temp = try TempStore()
        defer { temp.cleanup() }
        let first = try Self.stored(Bytes.random(10_000, seed: 1), codec: .zstd, in: temp)
        let second = try Self.stored(Bytes.random(10_000, seed: 2), codec: .zstd, in: temp)
        #expect(try temp.store.record(first.digest, inAnyOf: ["default"])?.record == first)
        #expect(try temp.store.record(second.digest, inAnyOf: ["default"])?.record == second)
        try temp.store.index.write { db in
            try db.execute(sql: "DELETE FROM dataset_blobs WHERE digest = ?", arguments: [first.digest.hex])
        }
        #expect(try temp.store.record(first.digest, inAnyOf: ["default"]) == nil)

        let other = try BlobStore.open(at: temp.root)
        try other.index.write { db in
            try db.execute(sql: "DELETE FROM dataset_blobs WHERE digest = ?", arguments: [second.digest.hex])
        }
        let deadline = ContinuousClock.now + .seconds(5)
        while try temp.store.record(second.digest, inAnyOf: ["default"]) != nil, ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.005)
        }
        #expect(try temp.store.record(second.digest, inAnyOf: ["default"]) == nil)
    }
}
