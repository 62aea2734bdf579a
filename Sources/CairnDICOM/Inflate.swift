import CZlib

/// Raw DEFLATE (RFC 1951) inflation for Deflated Explicit VR Little Endian, with a size bound.
enum Inflate {
    static func raw(_ input: [UInt8], limit: Int) throws -> [UInt8] {
        var stream = z_stream()
        guard inflateInit2_(&stream, -15, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw DicomError.deflate("inflateInit2 failed")
        }
        defer { inflateEnd(&stream) }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 256 * 1024)
        var input = input
        let inputCount = input.count
        return try input.withUnsafeMutableBufferPointer { inBuffer in
            stream.next_in = inBuffer.baseAddress
            stream.avail_in = UInt32(inputCount)
            while true {
                let status: Int32 = chunk.withUnsafeMutableBufferPointer { outBuffer in
                    stream.next_out = outBuffer.baseAddress
                    stream.avail_out = UInt32(outBuffer.count)
                    return inflate(&stream, Z_NO_FLUSH)
                }
                output.append(contentsOf: chunk[0..<(chunk.count - Int(stream.avail_out))])
                guard output.count <= limit else { throw DicomError.deflate("inflates past \(limit) bytes") }
                if status == Z_STREAM_END { return output }
                if status == Z_BUF_ERROR && stream.avail_in == 0 { return output }
                guard status == Z_OK else { throw DicomError.deflate("zlib error \(status)") }
            }
        }
    }
}
