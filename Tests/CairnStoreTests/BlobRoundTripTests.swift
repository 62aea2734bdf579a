import CairnTestSupport
import Foundation
import Testing
import CairnBlobs
@testable import CairnStore

@Suite struct BlobRoundTripTests {
    static let sizes = [0, 1, 4095, 4096, 4097, 65_536, 200_000, 1_000_003]

    @Test(arguments: [CodecChoice.zstd, .lz4, .raw, .auto])
    func everyRangeReadsBackExactly(codec: CodecChoice) throws {
        let temp = try TempStore(frameSize: 65_536)
        defer { temp.cleanup() }
        var rng = SeededRandom(seed: 42)
        for (index, size) in Self.sizes.enumerated() {
            let original = index % 2 == 0 ? Bytes.imageLike(size, seed: UInt64(index)) : Bytes.random(size, seed: UInt64(index))
            let result = try temp.store.put(bytes: original, options: .init(codec: codec))
            #expect(result.blob.digest == BlobDigest.of(original))
            #expect(result.blob.size == UInt64(size))
            let reader = try temp.store.reader(result.blob.digest)
            #expect(reader.size == UInt64(size))
            #expect(try reader.bytes(0..<UInt64(size)) == original)
            for _ in 0..<50 where size > 0 {
                let a = Int(rng.next() % UInt64(size))
                let b = a + Int(rng.next() % UInt64(size - a + 1))
                #expect(try reader.bytes(UInt64(a)..<UInt64(b)) == Array(original[a..<b]), "range \(a)..<\(b) of \(size)")
            }
            #expect(throws: StoreError.self) { try reader.bytes(0..<UInt64(size + 1)) }
        }
    }

    /// `read(_:into:)` decodes whole frames in place and copies partial ones: every random range,
    /// aligned or not, must equal the original.
    @Test(arguments: [CodecChoice.zstd, .lz4, .raw])
    func readIntoBufferMatchesOriginal(codec: CodecChoice) throws {
        let temp = try TempStore(frameSize: 4096)
        defer { temp.cleanup() }
        let original = Bytes.imageLike(100_003, seed: 11)
        let reader = try temp.store.reader(try temp.store.put(bytes: original, options: .init(codec: codec)).blob.digest)
        var rng = SeededRandom(seed: 5)
        for i in 0..<400 {
            let a = i % 4 == 0 ? Int(rng.next() % 25) * 4096 : Int(rng.next() % UInt64(original.count))
            let b = min(original.count, a + Int(rng.next() % 20_000))
            var out = [UInt8](repeating: 0, count: b - a)
            try out.withUnsafeMutableBytes { try reader.read(UInt64(a)..<UInt64(b), into: $0) }
            #expect(out == Array(original[a..<b]), "range \(a)..<\(b)")
        }
    }

    @Test func rangedReadsDecompressOnlyOverlappingFrames() throws {
        let temp = try TempStore(frameSize: 65_536)
        defer { temp.cleanup() }
        let original = Bytes.imageLike(10 * 65_536, seed: 3)
        let digest = try temp.store.put(bytes: original, options: .init(codec: .zstd)).blob.digest
        let reader = try temp.store.reader(digest)
        #expect(reader.frameCount == 10)
        _ = try reader.bytes(65_536 * 3 + 10..<65_536 * 3 + 20)
        #expect(reader.framesDecompressed == 1)
        _ = try reader.bytes(65_536 * 5 - 1..<65_536 * 5 + 1)
        #expect(reader.framesDecompressed == 3)
        #expect(reader.bytesDecompressed == 3 * 65_536)
    }

    @Test func autoStoresIncompressibleBytesRaw() throws {
        let temp = try TempStore()
        defer { temp.cleanup() }
        let noise = try temp.store.put(bytes: Bytes.random(300_000, seed: 1))
        #expect(noise.blob.codec == .raw)
        #expect(noise.blob.storedSize == 300_000)
        let bigNoise = try temp.store.put(bytes: Bytes.random(6_000_000, seed: 2))
        #expect(bigNoise.blob.codec == .raw)
        #expect(try temp.store.reader(bigNoise.blob.digest).bytes(0..<6_000_000) == Bytes.random(6_000_000, seed: 2))
        let image = try temp.store.put(bytes: Bytes.imageLike(300_000, seed: 1))
        #expect(image.blob.codec == .zstd)
        #expect(image.blob.storedSize < 200_000)
        #expect(try temp.store.put(bytes: []).blob.codec == .raw)
    }

    @Test func cutPointsStartNewFrames() throws {
        let temp = try TempStore(frameSize: 65_536)
        defer { temp.cleanup() }
        let original = Bytes.imageLike(300_000, seed: 9)
        let cuts: [UInt64] = [1_000, 70_000, 70_001, 250_000]
        let digest = try temp.store.put(bytes: original, options: .init(codec: .zstd), cutPoints: cuts).blob.digest
        let reader = try temp.store.reader(digest)
        #expect(try reader.bytes(0..<300_000) == original)
        let path = temp.store.path(of: digest)
        let data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let footer = Array(data.suffix(SeekTable.footerSize))
        let table = try SeekTable.parse(Array(data.suffix(try SeekTable.tableSize(fromFooter: footer))))
        let starts = Set((0..<table.frameCount).map { table.decompressedOffsets[$0] })
        for cut in cuts { #expect(starts.contains(cut), "a frame starts at \(cut)") }
        #expect(table.entries.allSatisfy { $0.decompressedSize <= 65_536 })
    }

    @Test func levelsAndFrameSizesAreRespected() throws {
        let temp = try TempStore()
        defer { temp.cleanup() }
        let original = Bytes.imageLike(1_000_000, seed: 4)
        let fast = try temp.store.put(bytes: original, options: .init(codec: .zstd, level: 1, frameSize: 1 << 20))
        #expect(fast.blob.frames == 1)
        let temp2 = try TempStore()
        defer { temp2.cleanup() }
        let strong = try temp2.store.put(bytes: original, options: .init(codec: .zstd, level: 19, frameSize: 1 << 20))
        #expect(strong.blob.storedSize <= fast.blob.storedSize)
        let small = try TempStore(frameSize: 4096)
        defer { small.cleanup() }
        #expect(try small.store.put(bytes: original, options: .init(codec: .lz4)).blob.frames == 245)
    }
}

/// Blobs written under each storage profile, with a native pixel region, read back exactly
/// through any range; damage to a pixel frame is refused like any frame's.
@Suite struct ProfileRoundTripTests {
    static func imageFile(rows: Int, columns: Int, header: Int, trailer: Int, seed: UInt64) -> [UInt8] {
        var rng = SeededRandom(seed: seed)
        var bytes = Bytes.random(header, seed: seed)
        var level = 2000
        for _ in 0..<(rows * columns) {
            level = max(0, min(65535, level + Int(rng.next() % 7) - 3))
            bytes.append(UInt8(level & 0xFF))
            bytes.append(UInt8(level >> 8))
        }
        return bytes + Bytes.random(trailer, seed: seed + 1)
    }

    @Test(arguments: StorageProfile.allCases)
    func everyRangeOfAPixelBlobReadsBackExactly(profile: StorageProfile) throws {
        let temp = try TempStore(frameSize: 65_536)
        defer { temp.cleanup() }
        let seed = UInt64.random(in: 0...UInt64.max)
        print("ProfileRoundTripTests \(profile) seed \(seed)")
        let header = 1337, rows = 300, columns = 301
        let original = Self.imageFile(rows: rows, columns: columns, header: header, trailer: 3, seed: seed)
        let geometry = try #require(PixelGeometry(bytesPerSample: 2, samplesPerPixel: 1, columns: columns, isSigned: false))
        let pixels = PixelRegion(range: UInt64(header)..<UInt64(header + rows * columns * 2), geometry: geometry)
        let result = try temp.store.put(bytes: original, options: .init(profile: profile), cutPoints: [UInt64(header)], pixels: pixels)
        #expect(result.blob.codec == .pixel)
        #expect(result.blob.profile == profile)
        #expect(result.blob.storedSize < UInt64(original.count) / 2)
        let reader = try temp.store.reader(result.blob.digest)
        #expect(try reader.bytes(0..<reader.size) == original)
        var rng = SeededRandom(seed: seed)
        var buffer = [UInt8](repeating: 0, count: original.count)
        for _ in 0..<200 {
            let a = Int(rng.next() % UInt64(original.count))
            let b = a + Int(rng.next() % UInt64(original.count - a + 1))
            #expect(try reader.bytes(UInt64(a)..<UInt64(b)) == Array(original[a..<b]), "seed \(seed): range \(a)..<\(b)")
            try buffer.withUnsafeMutableBytes { try reader.read(UInt64(a)..<UInt64(b), into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<(b - a)])) }
            #expect(Array(buffer[0..<(b - a)]) == Array(original[a..<b]), "seed \(seed): read(into:) \(a)..<\(b)")
        }
    }

    @Test func aFlippedByteInAPixelFrameIsRefused() throws {
        let temp = try TempStore(frameSize: 65_536)
        defer { temp.cleanup() }
        let original = Self.imageFile(rows: 128, columns: 256, header: 200, trailer: 0, seed: 9)
        let geometry = try #require(PixelGeometry(bytesPerSample: 2, samplesPerPixel: 1, columns: 256, isSigned: false))
        let pixels = PixelRegion(range: 200..<UInt64(original.count), geometry: geometry)
        let digest = try temp.store.put(bytes: original, options: .init(profile: .balanced), cutPoints: [200], pixels: pixels).blob.digest
        let path = temp.store.path(of: digest)
        var stored = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        // Past the header frame and into the first pixel frame's residuals.
        stored[stored.count / 3] ^= 0x10
        try Data(stored).write(to: URL(fileURLWithPath: path))
        let reader = try temp.store.reader(digest)
        #expect(throws: StoreError.self) { try reader.bytes(0..<reader.size) }
        #expect(try reader.bytes(0..<200) == Array(original[0..<200]), "the header frame is intact")
    }
}
