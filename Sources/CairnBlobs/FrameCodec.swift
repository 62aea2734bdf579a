import CLZ4
import CXXHash
import CZstd

/// How a blob file encodes its original bytes (DESIGN.md "Blob files").
public enum BlobCodec: String, Sendable, CaseIterable, Codable {
    case raw, zstd, lz4

    /// The level used when the caller names none: zstd's own default, lz4's fast mode.
    public var defaultLevel: Int {
        switch self {
        case .raw: return 0
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

    public init(codec: BlobCodec, level: Int, maxFrameSize: Int) throws {
        precondition(codec != .raw)
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
        case .raw:
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
        case .raw:
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

/// Decompresses single zstd or LZ4 frames; one per thread.
public final class FrameDecompressor {
    public let codec: BlobCodec
    private var zstdContext: OpaquePointer?
    private var lz4Context: OpaquePointer?

    public init(codec: BlobCodec) throws {
        self.codec = codec
        switch codec {
        case .zstd:
            guard let context = ZSTD_createDCtx() else { throw BlobFormatError.codec("ZSTD_createDCtx failed") }
            zstdContext = context
        case .lz4:
            var context: OpaquePointer?
            let code = LZ4F_createDecompressionContext(&context, UInt32(LZ4F_VERSION))
            guard LZ4F_isError(code) == 0, let context else { throw BlobFormatError.codec("LZ4F_createDecompressionContext failed") }
            lz4Context = context
        case .raw:
            break
        }
    }

    deinit {
        if let zstdContext { ZSTD_freeDCtx(zstdContext) }
        if let lz4Context { LZ4F_freeDecompressionContext(lz4Context) }
    }

    /// Decompresses one whole frame into `destination`, which must be exactly the frame's original size.
    /// Returns false when the frame is malformed or decodes to a different size.
    public func decompress(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) -> Bool {
        switch codec {
        case .zstd:
            let written = ZSTD_decompressDCtx(zstdContext, destination.baseAddress, destination.count,
                                              source.baseAddress, source.count)
            return ZSTD_isError(written) == 0 && written == destination.count
        case .lz4:
            return decompressLZ4(source, into: destination)
        case .raw:
            guard source.count == destination.count else { return false }
            destination.copyMemory(from: source)
            return true
        }
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
