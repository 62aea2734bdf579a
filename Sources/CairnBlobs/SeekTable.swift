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

    /// Why the end of a file is not a seek table that accounts for the whole file.
    package enum TrailerError: Error, CustomStringConvertible, Equatable {
        case tooShort
        case footer(ParseError)
        case longerThanFile
        case table(ParseError)
        case framesDoNotFill(covered: UInt64, available: UInt64)

        public var description: String {
            switch self {
            case .tooShort: return "too short for a seek table"
            case .footer(let error): return "seek table footer: \(error)"
            case .longerThanFile: return "seek table longer than the file"
            case .table(let error): return "seek table: \(error)"
            case .framesDoNotFill(let covered, let available): return "frames cover \(covered) bytes but the file has \(available)"
            }
        }
    }

    /// Bytes of a file's end read first: they usually hold the footer and the whole table.
    package static let tailRead = 4096

    /// The seek table ending a framed blob file of `fileSize` bytes, checked to account for every
    /// byte before it. `tail(n)` returns the file's last `n` bytes (its errors pass through).
    package static func read(fileSize: UInt64, tail: (Int) throws -> [UInt8]) throws -> SeekTable {
        guard fileSize >= UInt64(headerSize + footerSize) else { throw TrailerError.tooShort }
        let end = try tail(Int(min(fileSize, UInt64(tailRead))))
        let size: Int
        do { size = try tableSize(fromFooter: Array(end.suffix(footerSize))) } catch { throw TrailerError.footer(error) }
        guard UInt64(size) <= fileSize else { throw TrailerError.longerThanFile }
        let table: SeekTable
        do { table = try parse(size <= end.count ? Array(end.suffix(size)) : try tail(size)) } catch let error as ParseError {
            throw TrailerError.table(error)
        }
        guard table.compressedSize + UInt64(size) == fileSize else {
            throw TrailerError.framesDoNotFill(covered: table.compressedSize, available: fileSize - UInt64(size))
        }
        return table
    }

    private static func readU32(_ bytes: [UInt8], _ at: Int) -> UInt32 {
        UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
    }
}
