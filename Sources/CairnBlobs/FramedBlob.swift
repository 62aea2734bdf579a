/// A whole blob file decoded in memory, with the checks every read makes: the seek table's
/// bounds, each frame's decoding and its checksum. For tools and fuzzing; the store reads blob
/// files by range through `BlobReader`.
public enum FramedBlob {
    public enum DecodeError: Error, Equatable {
        case seekTable(String)
        case frame(index: Int)
    }

    /// The original bytes of a framed (zstd, lz4 or pixel) blob file.
    public static func decode(_ file: [UInt8], decoder: FrameDecoder) throws(DecodeError) -> [UInt8] {
        let table: SeekTable
        do { table = try SeekTable.read(fileSize: UInt64(file.count)) { Array(file.suffix($0)) } } catch {
            throw .seekTable("\(error)")
        }
        // The output grows frame by frame, and a frame too short for a magic is refused before its
        // declared size is allocated: declared sizes alone never size a buffer.
        var out: [UInt8] = []
        for index in 0..<table.frameCount {
            let stored = Int(table.compressedOffsets[index])..<Int(table.compressedOffsets[index + 1])
            guard stored.count >= 4 else { throw .frame(index: index) }
            var frame = [UInt8](repeating: 0, count: Int(table.entries[index].decompressedSize))
            let ok = file.withUnsafeBytes { source in
                frame.withUnsafeMutableBytes { destination in
                    decoder.decode(UnsafeRawBufferPointer(rebasing: source[stored]), into: destination)
                        && frameChecksum(UnsafeRawBufferPointer(destination)) == table.entries[index].checksum
                }
            }
            guard ok else { throw .frame(index: index) }
            out += frame
        }
        return out
    }
}
