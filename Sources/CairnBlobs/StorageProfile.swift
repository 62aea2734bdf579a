import COpenJPH
import Glibc
/// What a provider picks per dataset: how blobs trade disk for read speed. Each profile names the
/// codec and level of every frame, the pixel transforms tried on native pixel data, and the
/// smallest frame size it uses (chosen on `Tools/bench/pixel_bench.py`; README "Blob files").
public enum StorageProfile: String, Sendable, CaseIterable, Codable {
    /// Smallest: HTJ2K where it applies, else 2-D prediction with zstd level 19; frames of up to 1 MiB.
    case archive
    /// The default: horizontal delta, zstd level 3, 64 KiB frames.
    case balanced
    /// Fastest reads: byte planes and LZ4.
    case fast

    public static let `default` = StorageProfile.balanced

    public var codec: BlobCodec {
        switch self {
        case .archive, .balanced: return .zstd
        case .fast: return .lz4
        }
    }

    public var level: Int {
        switch self {
        case .archive: return 19
        case .balanced: return 3
        case .fast: return 0
        }
    }

    /// Transforms tried on each frame of 16-bit samples, in order; the first that applies is kept
    /// (HTJ2K applies to whole rows of one component; MED with zstd 19 takes the rest: on the
    /// benchmark's monochrome images HTJ2K was smaller on every one, see README).
    var transforms16: [PixelTransform] {
        switch self {
        case .archive: return [.htj2k, .med]
        case .balanced: return [.delta]
        case .fast: return [.shuffle]
        }
    }

    /// Transforms tried on 8-bit samples (byte planes are the identity there).
    var transforms8: [PixelTransform] {
        switch self {
        case .archive: return [.htj2k, .med]
        case .balanced, .fast: return [.delta]
        }
    }

    func transforms(for geometry: PixelGeometry) -> [PixelTransform] {
        geometry.bytesPerSample == 2 ? transforms16 : transforms8
    }

    /// The plain frame is compressed too only when the transform left the frame above this
    /// fraction of its size (noise, say), and kept when smaller.
    var plainCheckAbove: Double { 0.85 }

    /// Frames are at least this large (a store's `--frame-size` may ask for larger).
    public var minimumFrameSize: Int {
        switch self {
        case .archive: return 1 << 20
        case .balanced, .fast: return 64 * 1024
        }
    }
}

/// Where a file's native pixel data lies and how it is laid out: frames inside `range` go
/// through the pixel stage.
public struct PixelRegion: Sendable, Equatable {
    public let range: Range<UInt64>
    public let geometry: PixelGeometry

    public init(range: Range<UInt64>, geometry: PixelGeometry) {
        self.range = range
        self.geometry = geometry
    }
}

/// Encodes one frame as a plain codec frame or, for native pixel data, as a pixel frame when that
/// is smaller. Owns its compressor and buffers (one per writer thread).
public final class FrameEncoder {
    public let codec: BlobCodec
    public let level: Int
    private let compressor: FrameCompressor
    private let residuals: UnsafeMutableRawBufferPointer
    private let samples: UnsafeMutableRawBufferPointer
    private let best: UnsafeMutableRawBufferPointer

    public init(codec: BlobCodec, level: Int, maxFrameSize: Int) throws {
        self.codec = codec
        self.level = level
        compressor = try FrameCompressor(codec: codec, level: level, maxFrameSize: maxFrameSize)
        residuals = .allocate(byteCount: maxFrameSize, alignment: 64)
        samples = .allocate(byteCount: maxFrameSize, alignment: 64)
        best = .allocate(byteCount: PixelFrameHeader.size + compressor.bound, alignment: 64)
    }

    deinit {
        residuals.deallocate()
        samples.deallocate()
        best.deallocate()
    }

    /// The encoded frame (valid until the next call) and whether it is a pixel frame.
    public func encode(_ source: UnsafeRawBufferPointer, pixels: PixelGeometry?, profile: StorageProfile?) throws
        -> (bytes: UnsafeRawBufferPointer, isPixelFrame: Bool) {
        guard let pixels, let profile, source.count >= pixels.bytesPerSample else {
            return (try compressor.compress(source), false)
        }
        var bestSize = Int.max
        func keep(_ transform: PixelTransform, _ frame: UnsafeRawBufferPointer) {
            guard PixelFrameHeader.size + frame.count < bestSize, PixelFrameHeader.size + frame.count <= best.count else { return }
            bestSize = PixelFrameHeader.size + frame.count
            let header = PixelFrameHeader(transform: transform, codec: transform == .htj2k ? .raw : codec, geometry: pixels).encoded()
            header.withUnsafeBytes { best.copyMemory(from: $0) }
            UnsafeMutableRawBufferPointer(rebasing: best[PixelFrameHeader.size..<bestSize]).copyMemory(from: frame)
        }
        for transform in profile.transforms(for: pixels) where bestSize == Int.max {
            let transformed = UnsafeMutableRawBufferPointer(rebasing: residuals[0..<source.count])
            if transform == .htj2k {
                // Whole rows of one component only; the codestream holds rows x columns samples.
                guard pixels.samplesPerPixel == 1, source.count % pixels.rowBytes == 0 else { continue }
                PixelCoder.flipSigns(pixels, source, into: transformed)
                var coded: UnsafeMutablePointer<UInt8>?
                let size = cairn_htj2k_encode(transformed.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt32(pixels.columns),
                                              UInt32(source.count / pixels.rowBytes), UInt32(pixels.bytesPerSample), &coded)
                defer { cairn_htj2k_free(coded) }
                // OpenJPH 0.9 writes codestreams it then decodes wrongly (16-bit samples spanning the
                // whole range, say): a codestream is kept only when it decodes back to these samples.
                if size > 0, let coded, size + 4 <= transformed.count,
                   let check = samples.baseAddress?.assumingMemoryBound(to: UInt8.self), let biased = transformed.baseAddress,
                   cairn_htj2k_decode(coded, size, UInt32(pixels.columns), UInt32(source.count / pixels.rowBytes),
                                      UInt32(pixels.bytesPerSample), check) == 0,
                   memcmp(check, biased, source.count) == 0 {
                    let codestream = UnsafeRawBufferPointer(start: coded, count: size)
                    transformed.storeBytes(of: frameChecksum(codestream).littleEndian, as: UInt32.self)
                    UnsafeMutableRawBufferPointer(rebasing: transformed[4..<(4 + size)]).copyMemory(from: codestream)
                    keep(.htj2k, UnsafeRawBufferPointer(rebasing: transformed[0..<(4 + size)]))
                }
                continue
            }
            PixelCoder.forward(transform, pixels, source, into: transformed, scratch: samples)
            keep(transform, try compressor.compress(UnsafeRawBufferPointer(transformed)))
        }
        guard bestSize < Int.max else { return (try compressor.compress(source), false) }
        if Double(bestSize) > profile.plainCheckAbove * Double(source.count) {
            let plain = try compressor.compress(source)
            if plain.count <= bestSize { return (plain, false) }
        }
        return (UnsafeRawBufferPointer(rebasing: best[0..<bestSize]), true)
    }
}
