import CairnTestSupport
import COpenJPH
import Testing
@testable import CairnBlobs

@Suite struct PixelStageTests {
    /// Image-like samples (a random walk with edges) or noise, any length (a trailing odd byte too).
    static func samples(_ count: Int, smooth: Bool, rng: inout SeededRandom) -> [UInt8] {
        var level = Int(rng.next() % 65536)
        return (0..<count).map { _ in
            if !smooth { return UInt8(truncatingIfNeeded: rng.next()) }
            level += Int(rng.next() % 9) - 4
            if rng.next() % 97 == 0 { level = Int(rng.next() % 65536) }
            return UInt8(truncatingIfNeeded: level >> (rng.next() % 2 == 0 ? 0 : 8))
        }
    }

    static func randomGeometry(_ rng: inout SeededRandom) -> PixelGeometry? {
        PixelGeometry(bytesPerSample: rng.next() % 2 == 0 ? 1 : 2, samplesPerPixel: Int(rng.next() % 4) + 1,
                      columns: Int(rng.next() % 300) + 1, isSigned: rng.next() % 2 == 0)
    }

    @Test func everyTransformRoundTripsAnyGeometryAndLength() throws {
        let seed = UInt64.random(in: 0...UInt64.max)
        print("PixelStageTests seed \(seed)")
        var rng = SeededRandom(seed: seed)
        for round in 0..<400 {
            let geometry = try #require(Self.randomGeometry(&rng))
            let length = Int(rng.next() % 6000)
            let original = Self.samples(length, smooth: round % 3 != 0, rng: &rng)
            for transform in PixelTransform.allCases where transform.isByteTransform && (transform != .shuffle || geometry.bytesPerSample == 2) {
                var transformed = [UInt8](repeating: 0, count: length)
                var restored = [UInt8](repeating: 0xAA, count: length)
                let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: max(length, 1), alignment: 64)
                defer { scratch.deallocate() }
                original.withUnsafeBytes { source in
                    transformed.withUnsafeMutableBytes { PixelCoder.forward(transform, geometry, source, into: $0, scratch: scratch) }
                }
                transformed.withUnsafeBytes { source in
                    restored.withUnsafeMutableBytes { PixelCoder.inverse(transform, geometry, source, into: $0, scratch: scratch) }
                }
                #expect(restored == original, "seed \(seed) round \(round): \(transform) \(geometry) length \(length)")
            }
        }
    }

    @Test func smoothImagesShrinkAndNoiseFallsBackToPlainFrames() throws {
        var rng = SeededRandom(seed: 3)
        let geometry = try #require(PixelGeometry(bytesPerSample: 2, samplesPerPixel: 1, columns: 256, isSigned: true))
        var smooth = [UInt8](repeating: 0, count: 65_536)
        for i in stride(from: 0, to: smooth.count, by: 2) {
            let value = UInt16(truncatingIfNeeded: 1000 + (i / 2) % 256 + Int(rng.next() % 3))
            smooth[i] = UInt8(value & 0xFF)
            smooth[i + 1] = UInt8(value >> 8)
        }
        let noise = Self.samples(65_536, smooth: false, rng: &rng)
        let encoder = try FrameEncoder(codec: .zstd, level: 3, maxFrameSize: 65_536)
        let decoder = try FrameDecoder()
        for (bytes, expectPixelFrame) in [(smooth, true), (noise, false)] {
            let (frame, isPixelFrame) = try bytes.withUnsafeBytes {
                let encoded = try encoder.encode($0, pixels: geometry, profile: .balanced)
                return (Array(encoded.bytes), encoded.isPixelFrame)
            }
            #expect(isPixelFrame == expectPixelFrame)
            var restored = [UInt8](repeating: 0, count: bytes.count)
            let decoded = frame.withUnsafeBytes { source in restored.withUnsafeMutableBytes { decoder.decode(source, into: $0) } }
            #expect(decoded && restored == bytes)
        }
    }

    /// Archive tries HTJ2K on whole rows of one component: smooth signed 16-bit and 8-bit images
    /// come back exactly, and a frame that is not whole rows never becomes an HTJ2K frame.
    @Test func htj2kFramesRoundTrip() throws {
        var rng = SeededRandom(seed: 17)
        let decoder = try FrameDecoder()
        for (bytesPerSample, signed) in [(2, true), (2, false), (1, false)] {
            let geometry = try #require(PixelGeometry(bytesPerSample: bytesPerSample, samplesPerPixel: 1, columns: 200, isSigned: signed))
            let encoder = try FrameEncoder(codec: .zstd, level: 19, maxFrameSize: 1 << 20)
            for rows in [1, 7, 64] {
                var bytes = [UInt8](repeating: 0, count: rows * geometry.rowBytes)
                for i in 0..<(rows * 200) {
                    let value = (i % 200) * 3 + (i / 200) + Int(rng.next() % 3) - (signed ? 300 : 0)
                    for b in 0..<bytesPerSample { bytes[i * bytesPerSample + b] = UInt8(truncatingIfNeeded: value >> (8 * b)) }
                }
                let frame = try bytes.withUnsafeBytes { Array(try encoder.encode($0, pixels: geometry, profile: .archive).bytes) }
                var restored = [UInt8](repeating: 0, count: bytes.count)
                #expect(frame.withUnsafeBytes { source in restored.withUnsafeMutableBytes { decoder.decode(source, into: $0) } })
                #expect(restored == bytes, "\(bytesPerSample) bytes, signed \(signed), \(rows) rows")
            }
            // Full-range 16-bit noise, which OpenJPH 0.9 encodes to a codestream it decodes wrongly:
            // the encoder's check keeps it out, and the frame still round-trips.
            let noise = Self.samples(16 * geometry.rowBytes, smooth: false, rng: &rng)
            let noiseFrame = try noise.withUnsafeBytes { Array(try encoder.encode($0, pixels: geometry, profile: .archive).bytes) }
            var noiseBack = [UInt8](repeating: 0, count: noise.count)
            #expect(noiseFrame.withUnsafeBytes { source in noiseBack.withUnsafeMutableBytes { decoder.decode(source, into: $0) } })
            #expect(noiseBack == noise)
            let ragged = [UInt8](repeating: 7, count: geometry.rowBytes + 1)
            let frame = try ragged.withUnsafeBytes { Array(try encoder.encode($0, pixels: geometry, profile: .archive).bytes) }
            #expect(frame.withUnsafeBytes { PixelFrameHeader.parse($0) }?.transform != .htj2k)
            // An HTJ2K frame made directly (which transform wins depends on the image): decoded
            // exactly, and refused when the codestream's shape is not the frame's.
            let original = Self.samples(40 * geometry.rowBytes, smooth: true, rng: &rng)
            var biased = original
            biased.withUnsafeMutableBytes { PixelCoder.flipSigns(geometry, UnsafeRawBufferPointer($0), into: $0) }
            var coded: UnsafeMutablePointer<UInt8>?
            let size = cairn_htj2k_encode(biased, 200, 40, UInt32(bytesPerSample), &coded)
            defer { cairn_htj2k_free(coded) }
            let codestream = try #require(coded.map { Array(UnsafeBufferPointer(start: $0, count: size)) })
            let sum = codestream.withUnsafeBytes { frameChecksum($0) }
            let htj2kFrame = PixelFrameHeader(transform: .htj2k, codec: .raw, geometry: geometry).encoded()
                + withUnsafeBytes(of: sum.littleEndian) { Array($0) } + codestream
            var restored = [UInt8](repeating: 0, count: original.count)
            #expect(htj2kFrame.withUnsafeBytes { source in restored.withUnsafeMutableBytes { decoder.decode(source, into: $0) } })
            #expect(restored == original, "HTJ2K frame, \(bytesPerSample) bytes, signed \(signed)")
            var shorter = [UInt8](repeating: 0, count: original.count - geometry.rowBytes)
            #expect(!htj2kFrame.withUnsafeBytes { source in shorter.withUnsafeMutableBytes { decoder.decode(source, into: $0) } })
            // Damaged codestreams fail their own checksum before OpenJPH parses them.
            for _ in 0..<200 {
                var damaged = htj2kFrame
                let at = PixelFrameHeader.size + Int(rng.next() % UInt64(codestream.count + 4))
                if rng.next() % 4 == 0 { damaged = Array(damaged.prefix(at)) } else { damaged[at] ^= UInt8(1 << (rng.next() % 8)) }
                let decoded = damaged.withUnsafeBytes { source in restored.withUnsafeMutableBytes { decoder.decode(source, into: $0) } }
                #expect(!decoded)
            }
        }
    }

    @Test func headerRoundTripsAndRefusesEveryDamagedField() throws {
        let geometry = try #require(PixelGeometry(bytesPerSample: 2, samplesPerPixel: 3, columns: 1841, isSigned: true))
        let header = PixelFrameHeader(transform: .med, codec: .lz4, geometry: geometry)
        let bytes = header.encoded()
        #expect(bytes.count == PixelFrameHeader.size)
        #expect(bytes.withUnsafeBytes { PixelFrameHeader.parse($0) } == header)
        let damaged: [(Int, UInt8)] = [(0, 0x44), (4, 0), (4, 4), (5, 0), (5, 3), (6, 0), (6, 3), (7, 0), (7, 5),
                                       (11, 1), (9, 0), (10, 1), (12, 2), (13, 1), (15, 1)]
        for (offset, value) in damaged {
            var copy = bytes
            copy[offset] = value
            if offset == 9 { copy[8] = 0 }  // columns 0
            #expect(copy.withUnsafeBytes { PixelFrameHeader.parse($0) } == nil, "byte \(offset) = \(value)")
        }
        var shuffle8 = PixelFrameHeader(transform: .shuffle, codec: .zstd, geometry: geometry).encoded()
        shuffle8[6] = 1
        #expect(shuffle8.withUnsafeBytes { PixelFrameHeader.parse($0) } == nil, "byte planes of 8-bit samples")
        var htj2k = PixelFrameHeader(transform: .htj2k, codec: .raw, geometry: geometry).encoded()
        #expect(htj2k.withUnsafeBytes { PixelFrameHeader.parse($0) } == nil, "HTJ2K of three components")
        htj2k[7] = 1
        #expect(htj2k.withUnsafeBytes { PixelFrameHeader.parse($0) }?.transform == .htj2k)
        htj2k[5] = 1
        #expect(htj2k.withUnsafeBytes { PixelFrameHeader.parse($0) } == nil, "HTJ2K with an inner codec")
        #expect(Array(bytes.prefix(15)).withUnsafeBytes { PixelFrameHeader.parse($0) } == nil)
    }

    /// Damaged pixel frames (any byte flipped, any truncation) decode to false or to other bytes
    /// (which the frame checksum then refuses), never crash.
    @Test func damagedPixelFramesNeverCrash() throws {
        let seed = UInt64.random(in: 0...UInt64.max)
        print("PixelStageTests damaged-frame seed \(seed)")
        var rng = SeededRandom(seed: seed)
        let geometry = try #require(PixelGeometry(bytesPerSample: 2, samplesPerPixel: 1, columns: 64, isSigned: false))
        let original = Self.samples(8192, smooth: true, rng: &rng)
        for profile in StorageProfile.allCases {
            let encoder = try FrameEncoder(codec: profile.codec, level: profile.level, maxFrameSize: 8192)
            let frame = try original.withUnsafeBytes { Array(try encoder.encode($0, pixels: geometry, profile: profile).bytes) }
            let decoder = try FrameDecoder()
            var restored = [UInt8](repeating: 0, count: original.count)
            for _ in 0..<300 {
                var damaged = frame
                switch rng.next() % 3 {
                case 0: damaged[Int(rng.next() % UInt64(damaged.count))] ^= UInt8(1 << (rng.next() % 8))
                case 1: damaged = Array(damaged.prefix(Int(rng.next() % UInt64(damaged.count))))
                default: damaged[Int(rng.next() % UInt64(min(damaged.count, 24)))] = UInt8(truncatingIfNeeded: rng.next())
                }
                let decoded = damaged.withUnsafeBytes { source in restored.withUnsafeMutableBytes { decoder.decode(source, into: $0) } }
                if decoded && restored != original {
                    let caught = restored.withUnsafeBytes { frameChecksum($0) } != original.withUnsafeBytes { frameChecksum($0) }
                    #expect(caught, "seed \(seed): a damaged \(profile) frame decoded to other bytes with the same checksum")
                }
            }
        }
    }
}
