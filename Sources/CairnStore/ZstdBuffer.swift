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

    /// Decompresses a zstd stream; nil when it is not valid zstd or would exceed `limit`. Decodes
    /// straight into the result, sized from the first frame's declared content size when it has
    /// one (a 300 MB snapshot grown 1 MB at a time was copied over and over).
    public static func decompress(_ input: [UInt8], limit: Int) -> [UInt8]? {
        guard let stream = ZSTD_createDStream() else { return nil }
        defer { ZSTD_freeDStream(stream) }
        let declared = input.withUnsafeBytes { ZSTD_getFrameContentSize($0.baseAddress, $0.count) }
        let fallback = min(max(input.count * 8, 1 << 20), limit + 1)
        // Unknown and error sizes are the largest UInt64 values.
        var output = [UInt8](repeating: 0, count: declared < UInt64(limit) ? max(Int(declared), 1) : fallback)
        var filled = 0
        return input.withUnsafeBytes { source -> [UInt8]? in
            var inBuffer = ZSTD_inBuffer(src: source.baseAddress, size: source.count, pos: 0)
            while true {
                let code = output.withUnsafeMutableBytes { target -> Int in
                    var outBuffer = ZSTD_outBuffer(dst: target.baseAddress! + filled, size: target.count - filled, pos: 0)
                    let code = ZSTD_decompressStream(stream, &outBuffer, &inBuffer)
                    filled += outBuffer.pos
                    return code
                }
                if ZSTD_isError(code) != 0 || filled > limit { return nil }
                let inputUsed = inBuffer.pos == inBuffer.size
                if inputUsed, code == 0 {
                    output.removeLast(output.count - filled)
                    return output
                }
                if filled < output.count {
                    // Room left, so zstd stopped for want of input: a truncated stream.
                    if inputUsed { return nil }
                    continue
                }
                guard output.count <= limit else { return nil }
                output.append(contentsOf: repeatElement(0, count: min(output.count, limit + 1 - output.count)))
            }
        }
    }
}
