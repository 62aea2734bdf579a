@testable import CairnStore
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
