/// The zstd seekable-format seek table that ends every zstd and lz4 blob:
/// a skippable frame (magic 0x184D2A5E, frame size) holding one 12-byte entry per frame
/// (compressed size, decompressed size, XXH64 low 32 bits), then the 9-byte footer
/// (frame count, descriptor with bit 7 = checksums, magic 0x8F92EAB1). All little-endian.
public struct SeekTable: Equatable, Sendable {
    /// The largest number of original bytes a writer puts in one frame (64 MiB).
    public static let maxFrameSize = 64 * 1024 * 1024

    public struct Entry: Equatable, Sendable {
        public var compressedSize: UInt32
        public var decompressedSize: UInt32
        public var checksum: UInt32

        public init(compressedSize: UInt32, decompressedSize: UInt32, checksum: UInt32) {
            self.compressedSize = compressedSize
            self.decompressedSize = decompressedSize
            self.checksum = checksum
        }
    }

    package static let skippableMagic: UInt32 = 0x184D_2A5E
    package static let seekableMagic: UInt32 = 0x8F92_EAB1
    package static let footerSize = 9
    package static let entrySize = 12
    package static let headerSize = 8
    /// The format's own bound on frames per table.
    package static let maxFrames = 0x800_0000
    /// No writer makes a frame of more original bytes than the largest frame size, nor stores one
    /// in more than that plus zstd's and LZ4's worst-case expansion: an entry past these is damage,
    /// and is refused before any reader sizes a buffer from it.
    package static let maxFrameDecompressedSize = UInt32(maxFrameSize)
    package static let maxFrameCompressedSize = maxFrameDecompressedSize + maxFrameDecompressedSize / 128 + 1024

    public private(set) var entries: [Entry] = []
    /// Prefix sums: start of frame i in the blob file and in the original bytes; one extra at the end.
    package private(set) var compressedOffsets: [UInt64] = [0]
    package private(set) var decompressedOffsets: [UInt64] = [0]

    public init() {}

    public init(entries: [Entry]) {
        for entry in entries { append(entry) }
    }

    package mutating func append(_ entry: Entry) {
        entries.append(entry)
        compressedOffsets.append(compressedOffsets.last! + UInt64(entry.compressedSize))
        decompressedOffsets.append(decompressedOffsets.last! + UInt64(entry.decompressedSize))
    }

    public var frameCount: Int { entries.count }
    public var compressedSize: UInt64 { compressedOffsets.last! }
    public var decompressedSize: UInt64 { decompressedOffsets.last! }
    /// Bytes the encoded table occupies at the end of the file.
    public var encodedSize: Int { Self.headerSize + entries.count * Self.entrySize + Self.footerSize }

    /// The frame holding original byte `offset` (which must be < decompressedSize).
    package func frameIndex(containing offset: UInt64) -> Int {
        var low = 0, high = entries.count - 1
        while low < high {
            let mid = (low + high + 1) / 2
            if decompressedOffsets[mid] <= offset { low = mid } else { high = mid - 1 }
        }
        return low
    }

    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(encodedSize)
        func put(_ value: UInt32) {
            withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
        }
        put(Self.skippableMagic)
        put(UInt32(encodedSize - Self.headerSize))
        for entry in entries {
            put(entry.compressedSize)
            put(entry.decompressedSize)
            put(entry.checksum)
        }
        put(UInt32(entries.count))
        out.append(0x80)
        put(Self.seekableMagic)
        return out
    }

    package enum ParseError: Error, Equatable {
        case tooShort
        case badFooterMagic
        case reservedBits
        case missingChecksums
        case badHeader
        case tooManyFrames
        case frameTooLarge(index: Int, compressed: UInt32, decompressed: UInt32)
    }

    /// Number of bytes at the end of a file needed to read the table, given its 9-byte footer.
    package static func tableSize(fromFooter footer: [UInt8]) throws(ParseError) -> Int {
        guard footer.count == footerSize else { throw .tooShort }
        guard readU32(footer, 5) == seekableMagic else { throw .badFooterMagic }
        let descriptor = footer[4]
        guard descriptor & 0x7C == 0 else { throw .reservedBits }
        guard descriptor & 0x80 != 0 else { throw .missingChecksums }
        let frames = Int(readU32(footer, 0))
        guard frames <= maxFrames else { throw .tooManyFrames }
        return headerSize + frames * entrySize + footerSize
    }

    /// Parses the whole table (the last `tableSize` bytes of a blob file).
    package static func parse(_ bytes: [UInt8]) throws(ParseError) -> SeekTable {
        guard bytes.count >= headerSize + footerSize else { throw .tooShort }
        let footer = Array(bytes[(bytes.count - footerSize)...])
        let size = try tableSize(fromFooter: footer)
        guard size == bytes.count else { throw .tooShort }
        guard readU32(bytes, 0) == skippableMagic,
              Int(readU32(bytes, 4)) == size - headerSize
        else { throw .badHeader }
        var table = SeekTable()
        table.entries.reserveCapacity((size - headerSize - footerSize) / entrySize)
        var at = headerSize
        while at < size - footerSize {
            let entry = Entry(compressedSize: readU32(bytes, at), decompressedSize: readU32(bytes, at + 4),
                              checksum: readU32(bytes, at + 8))
            guard entry.decompressedSize <= maxFrameDecompressedSize, entry.compressedSize <= maxFrameCompressedSize else {
                throw .frameTooLarge(index: table.entries.count, compressed: entry.compressedSize, decompressed: entry.decompressedSize)
            }
            table.append(entry)
            at += entrySize
        }
        return table
    }

    private static func readU32(_ bytes: [UInt8], _ at: Int) -> UInt32 {
        UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
    }
}

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
        guard file.count >= SeekTable.headerSize + SeekTable.footerSize else { throw .seekTable("too short") }
        let table: SeekTable
        do {
            let size = try SeekTable.tableSize(fromFooter: Array(file.suffix(SeekTable.footerSize)))
            guard size <= file.count else { throw DecodeError.seekTable("longer than the file") }
            table = try SeekTable.parse(Array(file.suffix(size)))
            guard table.compressedSize + UInt64(size) == UInt64(file.count) else { throw DecodeError.seekTable("frames do not fill the file") }
        } catch let error as DecodeError {
            throw error
        } catch {
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
