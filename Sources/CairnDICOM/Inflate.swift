import CZlib

/// Raw DEFLATE (RFC 1951) inflation for Deflated Explicit VR Little Endian, with a size bound.
enum Inflate {
    /// Inflates `input`; the output grows only with what zlib produced and stops past `limit`.
    /// `complete` is false when the stream ended before its last block (a cut file).
    /// zlib keeps a pointer back to its `z_stream` (`state->strm`), so the stream lives on the heap
    /// at one address from `inflateInit2` to `inflateEnd`, never in a Swift variable that may move.
    static func raw(_ input: [UInt8], limit: Int) throws -> (output: [UInt8], complete: Bool) {
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        defer {
            stream.deinitialize(count: 1)
            stream.deallocate()
        }
        guard inflateInit2_(stream, -15, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw DicomError.deflate("inflateInit2 failed")
        }
        defer { inflateEnd(stream) }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 256 * 1024)
        return try input.withUnsafeBufferPointer { inBuffer -> ([UInt8], Bool) in
            // zlib's next_in is not const in its API; it only reads through it.
            stream.pointee.next_in = UnsafeMutablePointer(mutating: inBuffer.baseAddress)
            stream.pointee.avail_in = UInt32(clamping: inBuffer.count)
            guard inBuffer.count <= Int(UInt32.max) else { throw DicomError.deflate("deflated data set over 4 GiB") }
            while true {
                let status: Int32 = chunk.withUnsafeMutableBufferPointer { outBuffer in
                    stream.pointee.next_out = outBuffer.baseAddress
                    stream.pointee.avail_out = UInt32(outBuffer.count)
                    return inflate(stream, Z_NO_FLUSH)
                }
                // The output buffer is gone after the closure: leave no pointer to it behind.
                stream.pointee.next_out = nil
                output.append(contentsOf: chunk[0..<(chunk.count - Int(stream.pointee.avail_out))])
                guard output.count <= limit else { throw DicomError.deflate("inflates past \(limit) bytes") }
                // Input left after the stream's end is not part of the data set: not complete either,
                // but for the one NUL that pads an odd-length deflated stream to even length (PS3.5 A.5).
                if status == Z_STREAM_END {
                    let left = Int(stream.pointee.avail_in)
                    let padded = left == 1 && inBuffer.count % 2 == 0 && inBuffer.last == 0
                    return (output, left == 0 || padded)
                }
                if status == Z_BUF_ERROR && stream.pointee.avail_in == 0 { return (output, false) }
                guard status == Z_OK else { throw DicomError.deflate("zlib error \(status)") }
            }
        }
    }
}
