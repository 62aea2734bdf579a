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

    /// Decompresses a zstd stream of unknown size; nil when it is not valid zstd or would exceed `limit`.
    public static func decompress(_ input: [UInt8], limit: Int) -> [UInt8]? {
        guard let stream = ZSTD_createDStream() else { return nil }
        defer { ZSTD_freeDStream(stream) }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        return input.withUnsafeBytes { source -> [UInt8]? in
            var inBuffer = ZSTD_inBuffer(src: source.baseAddress, size: source.count, pos: 0)
            while true {
                let (code, produced) = chunk.withUnsafeMutableBytes { target -> (Int, Int) in
                    var outBuffer = ZSTD_outBuffer(dst: target.baseAddress, size: target.count, pos: 0)
                    let code = ZSTD_decompressStream(stream, &outBuffer, &inBuffer)
                    return (code, outBuffer.pos)
                }
                if ZSTD_isError(code) != 0 { return nil }
                output += chunk[0..<produced]
                if output.count > limit { return nil }
                if inBuffer.pos == inBuffer.size && produced < chunk.count { return code == 0 ? output : nil }
            }
        }
    }
}
