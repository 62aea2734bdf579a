import CZstd

/// Whole-buffer zstd, for small documents on the wire (snapshots pushed to the hub).
public enum ZstdBuffer {
    public static func compress(_ input: [UInt8], level: Int32 = 3) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: ZSTD_compressBound(input.count))
        let written = output.withUnsafeMutableBytes { target in
            input.withUnsafeBytes { source in ZSTD_compress(target.baseAddress, target.count, source.baseAddress, source.count, level) }
        }
        precondition(ZSTD_isError(written) == 0, "ZSTD_compress cannot fail with a bound-sized buffer")
        return Array(output[0..<written])
    }

    /// Decompresses a zstd stream; nil when it is not valid zstd or would exceed `limit`. The
    /// output grows with what is produced, never from a size the frame header declares.
    public static func decompress(_ input: [UInt8], limit: Int) -> [UInt8]? {
        let inflater = ZstdInflater(limit: limit, maxRatio: nil)
        return input.withUnsafeBytes { bytes -> [UInt8]? in
            do {
                try inflater.feed(bytes)
                return try inflater.finish()
            } catch {
                return nil
            }
        }
    }
}

/// Why a zstd stream was refused while inflating.
public enum ZstdInflateError: Error, Equatable, CustomStringConvertible {
    case invalid(String)
    case truncated
    case tooLarge(limit: Int)
    case ratio(compressed: Int, produced: Int, maxRatio: Int)

    public var description: String {
        switch self {
        case .invalid(let why): return "not valid zstd: \(why)"
        case .truncated: return "the zstd stream ends inside a frame"
        case .tooLarge(let limit): return "inflates past \(limit) bytes"
        case .ratio(let compressed, let produced, let maxRatio):
            return "\(compressed) compressed bytes inflated to \(produced), more than \(maxRatio):1"
        }
    }
}

/// Streaming zstd decompression whose output is bounded by what has been produced: by `limit`
/// and, optionally, by `maxRatio` times the compressed bytes fed so far (past the first MiB), so a
/// small body cannot make the process allocate a large buffer. The decoder's window is capped at
/// 16 MiB (zstd's default lets a frame ask for 128 MiB).
public final class ZstdInflater {
    public let limit: Int
    public let maxRatio: Int?
    public private(set) var output: [UInt8] = []
    public private(set) var consumed = 0
    private let stream: OpaquePointer
    /// Decoded bytes land here first, then are appended to `output` once they pass the bounds.
    private let scratch: UnsafeMutableRawBufferPointer
    private var frameOpen = false
    /// Output below this is allowed whatever the ratio (small documents compress very well).
    static let ratioFloor = 1 << 20
    static let windowLogMax: Int32 = 24
    private static let chunk = 256 * 1024

    public init(limit: Int, maxRatio: Int?) {
        self.limit = limit
        self.maxRatio = maxRatio
        guard let stream = ZSTD_createDStream() else { fatalError("ZSTD_createDStream: out of memory") }
        self.stream = stream
        ZSTD_DCtx_setParameter(stream, ZSTD_d_windowLogMax, Self.windowLogMax)
        scratch = .allocate(byteCount: Self.chunk, alignment: 16)
    }

    deinit {
        ZSTD_freeDStream(stream)
        scratch.deallocate()
    }

    /// Inflates the next compressed bytes.
    public func feed(_ bytes: UnsafeRawBufferPointer) throws(ZstdInflateError) {
        guard bytes.count > 0 else { return }
        consumed += bytes.count
        var input = ZSTD_inBuffer(src: bytes.baseAddress, size: bytes.count, pos: 0)
        while input.pos < input.size {
            // zstd may hold decoded bytes back when the output fills: step() goes on until it does not.
            while try step(&input) == scratch.count {}
        }
    }

    /// The whole output; throws when the stream stopped inside a frame.
    public func finish() throws(ZstdInflateError) -> [UInt8] {
        guard !frameOpen else { throw .truncated }
        return output
    }

    /// One call into zstd: returns how many bytes it produced (all of them kept in `output`).
    private func step(_ input: inout ZSTD_inBuffer) throws(ZstdInflateError) -> Int {
        var out = ZSTD_outBuffer(dst: scratch.baseAddress, size: scratch.count, pos: 0)
        let before = input.pos
        let code = ZSTD_decompressStream(stream, &out, &input)
        if ZSTD_isError(code) != 0 { throw .invalid(String(cString: ZSTD_getErrorName(code))) }
        try accept(out.pos)
        // A call that moved nothing (draining after a frame ended) says nothing about the frame.
        if out.pos > 0 || input.pos > before { frameOpen = code != 0 }
        return out.pos
    }

    private func accept(_ produced: Int) throws(ZstdInflateError) {
        guard produced > 0 else { return }
        let total = output.count + produced
        if total > limit { throw .tooLarge(limit: limit) }
        if let maxRatio, total > Self.ratioFloor, total / maxRatio > consumed {
            throw .ratio(compressed: consumed, produced: total, maxRatio: maxRatio)
        }
        output.append(contentsOf: UnsafeRawBufferPointer(rebasing: scratch[0..<produced]))
    }
}
