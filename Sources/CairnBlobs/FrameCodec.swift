import COpenJPH
import CLZ4
import CXXHash
import CZstd

/// How a blob file encodes its original bytes (DESIGN.md "Blob files", README "On disk").
public enum BlobCodec: String, Sendable, CaseIterable, Codable {
    /// The original bytes.
    case raw
    /// The zstd seekable format; stock `zstd -d` restores the original.
    case zstd
    /// LZ4 frames and the same seek table; stock `lz4 -d` restores the original.
    case lz4
    /// The same container, where frames of native pixel data are pixel frames (a `PixelFrameHeader`
    /// and a zstd or LZ4 frame of transformed samples). Only Cairn's readers and Tools/blob_decode.py
    /// restore these; stock decoders fail at the first pixel frame (`lz4 -d` leaves what it wrote before it).
    case pixel

    /// The level used when the caller names none: zstd's own default, lz4's fast mode.
    public var defaultLevel: Int {
        switch self {
        case .raw, .pixel: return 0
        case .zstd: return 3
        case .lz4: return 0
        }
    }
}

/// Low 32 bits of XXH64 (seed 0): the per-frame checksum of the seek table.
@inline(__always)
public func frameChecksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
    UInt32(truncatingIfNeeded: XXH64(bytes.baseAddress, bytes.count, 0))
}

/// Compresses one frame at a time into one independent zstd or LZ4 frame.
/// Owns its C context and output buffer; one per thread.
public final class FrameCompressor {
    public let codec: BlobCodec
    public let level: Int
    private var zstdContext: OpaquePointer?
    private var output: UnsafeMutableRawBufferPointer
    /// The largest frame one call can produce.
    public var bound: Int { output.count }

    public init(codec: BlobCodec, level: Int, maxFrameSize: Int) throws {
        precondition(codec == .zstd || codec == .lz4, "frames are compressed with zstd or LZ4")
        self.codec = codec
        self.level = level
        let bound: Int
        switch codec {
        case .zstd:
            guard let context = ZSTD_createCCtx() else { throw BlobFormatError.codec("ZSTD_createCCtx failed") }
            zstdContext = context
            try Self.check(ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, Int32(level)))
            // Each frame also carries zstd's own content checksum (the same low 32 bits of XXH64 as
            // the seek table's): a blob sent as stored (Content-Encoding: zstd) is then checked by
            // the client's decoder. 4 bytes per frame.
            try Self.check(ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 1))
            try Self.check(ZSTD_CCtx_setParameter(context, ZSTD_c_contentSizeFlag, 1))
            bound = ZSTD_compressBound(maxFrameSize)
        case .lz4:
            var preferences = Self.lz4Preferences(level: level, contentSize: maxFrameSize)
            bound = LZ4F_compressFrameBound(maxFrameSize, &preferences)
        case .raw, .pixel:
            bound = 0
        }
        output = .allocate(byteCount: bound, alignment: 16)
    }

    deinit {
        if let zstdContext { ZSTD_freeCCtx(zstdContext) }
        output.deallocate()
    }

    /// Compresses `source` as one frame; the result stays valid until the next call.
    public func compress(_ source: UnsafeRawBufferPointer) throws -> UnsafeRawBufferPointer {
        switch codec {
        case .zstd:
            let written = ZSTD_compress2(zstdContext, output.baseAddress, output.count,
                                         source.baseAddress, source.count)
            try Self.check(written)
            return UnsafeRawBufferPointer(rebasing: output[0..<written])
        case .lz4:
            var preferences = Self.lz4Preferences(level: level, contentSize: source.count)
            let written = LZ4F_compressFrame(output.baseAddress, output.count,
                                             source.baseAddress, source.count, &preferences)
            if LZ4F_isError(written) != 0 {
                throw BlobFormatError.codec("LZ4F_compressFrame: " + String(cString: LZ4F_getErrorName(written)))
            }
            return UnsafeRawBufferPointer(rebasing: output[0..<written])
        case .raw, .pixel:
            return source
        }
    }

    static func lz4Preferences(level: Int, contentSize: Int) -> LZ4F_preferences_t {
        var preferences = LZ4F_preferences_t()
        preferences.frameInfo.blockSizeID = LZ4F_max4MB
        preferences.frameInfo.blockMode = LZ4F_blockIndependent
        preferences.frameInfo.contentChecksumFlag = LZ4F_noContentChecksum
        preferences.frameInfo.contentSize = UInt64(contentSize)
        preferences.compressionLevel = Int32(level)
        return preferences
    }

    static func check(_ code: Int) throws {
        if ZSTD_isError(code) != 0 { throw BlobFormatError.codec(String(cString: ZSTD_getErrorName(code))) }
    }
}

/// Decodes any frame of a framed blob (zstd, LZ4 or pixel frame), recognised by its first four
/// bytes rather than by what the index says of the blob, so a blob rewritten under a reader
/// (`cairn recompress`) still decodes. Owns its C contexts and the pixel stage's buffer; one per thread.
public final class FrameDecoder {
    private let zstdContext: OpaquePointer
    private let lz4Context: OpaquePointer
    private var transformed = UnsafeMutableRawBufferPointer.allocate(byteCount: 0, alignment: 64)
    private var samples = UnsafeMutableRawBufferPointer.allocate(byteCount: 0, alignment: 64)

    static let zstdMagic: UInt32 = 0xFD2F_B528
    static let lz4Magic: UInt32 = 0x184D_2204

    public init() throws {
        guard let zstd = ZSTD_createDCtx() else { throw BlobFormatError.codec("ZSTD_createDCtx failed") }
        var lz4: OpaquePointer?
        let code = LZ4F_createDecompressionContext(&lz4, UInt32(LZ4F_VERSION))
        guard LZ4F_isError(code) == 0, let lz4 else {
            ZSTD_freeDCtx(zstd)
            throw BlobFormatError.codec("LZ4F_createDecompressionContext failed")
        }
        zstdContext = zstd
        lz4Context = lz4
    }

    deinit {
        ZSTD_freeDCtx(zstdContext)
        LZ4F_freeDecompressionContext(lz4Context)
        transformed.deallocate()
        samples.deallocate()
    }

    /// Bytes of buffer this decoder holds on to (pools drop decoders grown for huge frames).
    public var retainedBytes: Int { transformed.count + samples.count }

    /// Decodes one whole frame into `destination`, which must be exactly the frame's original size.
    /// Returns false when the frame is malformed or decodes to a different size; the caller still
    /// checks the frame's checksum, which is what proves the bytes.
    public func decode(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) -> Bool {
        guard source.count >= 4 else { return false }
        switch readU32(source, 0) {
        case Self.zstdMagic:
            return decompressZstd(source, into: destination)
        case Self.lz4Magic:
            return decompressLZ4(source, into: destination)
        case PixelFrameHeader.magic:
            return decodePixels(source, into: destination)
        default:
            return false
        }
    }

    private func decodePixels(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) -> Bool {
        guard let header = PixelFrameHeader.parse(source) else { return false }
        let inner = UnsafeRawBufferPointer(rebasing: source[PixelFrameHeader.size...])
        guard inner.count >= 4 else { return false }
        if header.transform == .htj2k { return decodeHTJ2K(header.geometry, inner, into: destination) }
        if transformed.count < destination.count {
            transformed.deallocate()
            transformed = .allocate(byteCount: destination.count, alignment: 64)
            samples.deallocate()
            samples = .allocate(byteCount: destination.count, alignment: 64)
        }
        let residuals = UnsafeMutableRawBufferPointer(rebasing: transformed[0..<destination.count])
        let decoded: Bool
        switch (header.codec, readU32(inner, 0)) {
        case (.zstd, Self.zstdMagic): decoded = decompressZstd(inner, into: residuals)
        case (.lz4, Self.lz4Magic): decoded = decompressLZ4(inner, into: residuals)
        default: decoded = false
        }
        guard decoded else { return false }
        PixelCoder.inverse(header.transform, header.geometry, UnsafeRawBufferPointer(residuals), into: destination, scratch: samples)
        return true
    }

    private func decodeHTJ2K(_ geometry: PixelGeometry, _ payload: UnsafeRawBufferPointer,
                             into destination: UnsafeMutableRawBufferPointer) -> Bool {
        let codestream = UnsafeRawBufferPointer(rebasing: payload[4...])
        guard readU32(payload, 0) == frameChecksum(codestream),
              destination.count > 0, destination.count % geometry.rowBytes == 0,
              let samples = destination.baseAddress?.assumingMemoryBound(to: UInt8.self),
              cairn_htj2k_decode(codestream.baseAddress?.assumingMemoryBound(to: UInt8.self), codestream.count,
                                 UInt32(geometry.columns), UInt32(destination.count / geometry.rowBytes),
                                 UInt32(geometry.bytesPerSample), samples) == 0
        else { return false }
        PixelCoder.flipSigns(geometry, UnsafeRawBufferPointer(destination), into: destination)
        return true
    }

    private func decompressZstd(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) -> Bool {
        let written = ZSTD_decompressDCtx(zstdContext, destination.baseAddress, destination.count,
                                          source.baseAddress, source.count)
        return ZSTD_isError(written) == 0 && written == destination.count
    }

    private func decompressLZ4(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) -> Bool {
        LZ4F_resetDecompressionContext(lz4Context)
        var consumed = 0
        var produced = 0
        while true {
            var sourceSize = source.count - consumed
            var destinationSize = destination.count - produced
            let hint = LZ4F_decompress(lz4Context, destination.baseAddress.map { $0 + produced }, &destinationSize,
                                       source.baseAddress.map { $0 + consumed }, &sourceSize, nil)
            if LZ4F_isError(hint) != 0 { return false }
            consumed += sourceSize
            produced += destinationSize
            if hint == 0 { return consumed == source.count && produced == destination.count }
            if sourceSize == 0 && destinationSize == 0 { return false }
        }
    }
}
