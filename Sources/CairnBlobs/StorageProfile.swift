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
    /// The pixel frame being built: header, then payload.
    private let pixelFrame: UnsafeMutableRawBufferPointer

    public init(codec: BlobCodec, level: Int, maxFrameSize: Int) throws {
        self.codec = codec
        self.level = level
        compressor = try FrameCompressor(codec: codec, level: level, maxFrameSize: maxFrameSize)
        residuals = .allocate(byteCount: maxFrameSize, alignment: 64)
        samples = .allocate(byteCount: maxFrameSize, alignment: 64)
        pixelFrame = .allocate(byteCount: PixelFrameHeader.size + compressor.bound, alignment: 64)
    }

    deinit {
        residuals.deallocate()
        samples.deallocate()
        pixelFrame.deallocate()
    }

    /// The encoded frame (valid until the next call) and whether it is a pixel frame. The first of
    /// the profile's transforms that applies makes the pixel frame; the plain frame replaces it
    /// when the transform hardly helped and the plain frame is smaller.
    public func encode(_ source: UnsafeRawBufferPointer, pixels: PixelGeometry?, profile: StorageProfile?) throws
        -> (bytes: UnsafeRawBufferPointer, isPixelFrame: Bool) {
        guard let pixels, let profile, source.count >= pixels.bytesPerSample, let frame = try firstPixelFrame(profile, pixels, source)
        else { return (try compressor.compress(source), false) }
        if Double(frame.count) > profile.plainCheckAbove * Double(source.count) {
            let plain = try compressor.compress(source)
            if plain.count <= frame.count { return (plain, false) }
        }
        return (frame, true)
    }

    /// The pixel frame of the first of the profile's transforms that applies (each call of
    /// `pixelFrame` reuses the same buffer, so they are tried one at a time).
    private func firstPixelFrame(_ profile: StorageProfile, _ pixels: PixelGeometry, _ source: UnsafeRawBufferPointer) throws
        -> UnsafeRawBufferPointer? {
        for transform in profile.transforms(for: pixels) {
            if let frame = try pixelFrame(transform, pixels, source) { return frame }
        }
        return nil
    }

    /// `source` as a pixel frame under `transform` in `pixelFrame`, or nil when the transform does
    /// not apply to it (or would not fit the buffer).
    private func pixelFrame(_ transform: PixelTransform, _ pixels: PixelGeometry, _ source: UnsafeRawBufferPointer) throws
        -> UnsafeRawBufferPointer? {
        let payload: UnsafeRawBufferPointer
        if transform == .htj2k {
            guard let codestream = htj2kPayload(pixels, source) else { return nil }
            payload = codestream
        } else {
            let transformed = UnsafeMutableRawBufferPointer(rebasing: residuals[0..<source.count])
            PixelCoder.forward(transform, pixels, source, into: transformed, scratch: samples)
            payload = try compressor.compress(UnsafeRawBufferPointer(transformed))
        }
        let size = PixelFrameHeader.size + payload.count
        guard size <= pixelFrame.count else { return nil }
        PixelFrameHeader(transform: transform, codec: transform == .htj2k ? .raw : codec, geometry: pixels)
            .write(into: pixelFrame)
        UnsafeMutableRawBufferPointer(rebasing: pixelFrame[PixelFrameHeader.size..<size]).copyMemory(from: payload)
        return UnsafeRawBufferPointer(rebasing: pixelFrame[0..<size])
    }

    /// The HTJ2K payload (checksum, codestream) of whole rows of one component, in `residuals`; nil
    /// when the frame is not whole rows of one component or OpenJPH fails. OpenJPH 0.9 writes
    /// codestreams it then decodes wrongly (16-bit samples spanning the whole range, say), so a
    /// codestream is kept only when it decodes back to the same samples.
    private func htj2kPayload(_ pixels: PixelGeometry, _ source: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        guard pixels.samplesPerPixel == 1, source.count % pixels.rowBytes == 0,
              let biased = samples.baseAddress?.assumingMemoryBound(to: UInt8.self),
              let check = residuals.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return nil }
        let rows = UInt32(source.count / pixels.rowBytes), columns = UInt32(pixels.columns), width = UInt32(pixels.bytesPerSample)
        PixelCoder.flipSigns(pixels, source, into: UnsafeMutableRawBufferPointer(rebasing: samples[0..<source.count]))
        var coded: UnsafeMutablePointer<UInt8>?
        let size = cairn_htj2k_encode(biased, columns, rows, width, &coded)
        defer { cairn_htj2k_free(coded) }
        guard size > 0, let coded, size + 4 <= residuals.count,
              cairn_htj2k_decode(coded, size, columns, rows, width, check) == 0, memcmp(check, biased, source.count) == 0
        else { return nil }
        let codestream = UnsafeRawBufferPointer(start: coded, count: size)
        residuals.storeBytes(of: frameChecksum(codestream).littleEndian, as: UInt32.self)
        UnsafeMutableRawBufferPointer(rebasing: residuals[4..<(4 + size)]).copyMemory(from: codestream)
        return UnsafeRawBufferPointer(rebasing: residuals[0..<(4 + size)])
    }
}
