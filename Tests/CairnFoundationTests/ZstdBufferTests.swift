import CairnTestSupport
@testable import CairnFoundation
import Testing

@Suite struct ZstdBufferTests {
    /// Whole frames (declared size), several frames back to back (only the first size known: the
    /// buffer must grow), empty input; truncated streams and streams over the limit give nil.
    @Test func roundTripsAndRefuses() {
        for size in [0, 1, 1_000, 1 << 20 + 17] {
            let original = (0..<size).map { UInt8(truncatingIfNeeded: ($0 &* 2_654_435_761) >> 13) & 7 }
            let compressed = ZstdBuffer.compress(original)
            #expect(ZstdBuffer.decompress(compressed, limit: 1 << 30) == original, "\(size) bytes")
            let twice = compressed + ZstdBuffer.compress(original + [1, 2, 3])
            #expect(ZstdBuffer.decompress(twice, limit: 1 << 30) == original + original + [1, 2, 3], "\(size) bytes, two frames")
            if size > 0 {
                #expect(ZstdBuffer.decompress(Array(compressed.dropLast(3)), limit: 1 << 30) == nil, "\(size) bytes, truncated")
                #expect(ZstdBuffer.decompress(compressed, limit: size - 1) == nil, "\(size) bytes over a limit of \(size - 1)")
                #expect(ZstdBuffer.decompress(twice, limit: 2 * size) == nil, "\(size) bytes, two frames over the limit")
            }
        }
        #expect(ZstdBuffer.decompress(Array("not zstd".utf8), limit: 1 << 20) == nil)
    }
}

@Suite struct ZstdInflaterTests {
    /// Fed in random slices (as a request body arrives), the inflater gives back the original.
    @Test func randomSlicesRoundTrip() throws {
        let seed = UInt64.random(in: 0...UInt64(UInt32.max))
        print("ZstdInflaterTests seed \(seed)")
        var rng = SeededRandom(seed: seed)
        for size in [1, 4_000, 3 << 20] {
            let original = (0..<size).map { _ in UInt8.random(in: 0...3, using: &rng) }
            let compressed = ZstdBuffer.compress(original)
            let inflater = ZstdInflater(limit: 1 << 30, maxRatio: 250)
            var at = 0
            while at < compressed.count {
                let step = min(compressed.count - at, Int.random(in: 1...70_000, using: &rng))
                try compressed[at..<(at + step)].withUnsafeBytes { try inflater.feed($0) }
                at += step
            }
            #expect(try inflater.finish() == original, "\(size) bytes, seed \(seed)")
        }
    }

    /// A gigabyte of zeros compresses about 30,000:1: refused by the ratio after a few MiB, and by
    /// the limit when no ratio is set.
    @Test func bombsStopEarly() {
        let zeros = [UInt8](repeating: 0, count: 64 << 20)
        let bomb = ZstdBuffer.compress(zeros, level: 19)
        let inflater = ZstdInflater(limit: 1 << 30, maxRatio: 250)
        #expect(throws: ZstdInflateError.self) { try bomb.withUnsafeBytes { try inflater.feed($0) } }
        #expect(inflater.output.count <= max(ZstdInflater.ratioFloor, bomb.count * 250) + (256 << 10))
        let limited = ZstdInflater(limit: 1 << 20, maxRatio: nil)
        #expect(throws: ZstdInflateError.tooLarge(limit: 1 << 20)) { try bomb.withUnsafeBytes { try limited.feed($0) } }
    }

    /// A frame header that declares almost a gigabyte but holds 16 bytes: an error, with nothing
    /// sized from the declaration (the old buffer was allocated from it).
    @Test func declaredSizeIsNotTrusted() {
        var frame: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD, 0b1100_0000, 0x00]
        withUnsafeBytes(of: UInt64((1 << 30) - 64).littleEndian) { frame += $0 }
        let blockHeader = UInt32(16 << 3 | 1)
        withUnsafeBytes(of: blockHeader.littleEndian) { frame += $0.prefix(3) }
        frame += [UInt8](repeating: 0x78, count: 16)
        let inflater = ZstdInflater(limit: 1 << 30, maxRatio: nil)
        #expect(throws: ZstdInflateError.self) {
            try frame.withUnsafeBytes { try inflater.feed($0) }
            _ = try inflater.finish()
        }
        #expect(inflater.output.count <= 16)
        #expect(ZstdBuffer.decompress(frame, limit: 1 << 30) == nil)
    }
}
