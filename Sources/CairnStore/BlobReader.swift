import Glibc

/// Reads original bytes back from one blob file. Ranged reads decompress only the frames that
/// overlap the range and check each frame's XXH64 before any of its bytes reach the caller.
/// Not thread-safe: one reader per thread (they are cheap).
public final class BlobReader {
    public let digest: BlobDigest
    public let codec: BlobCodec
    public let path: String
    /// Original size in bytes.
    public let size: UInt64
    private let file: PosixFile
    private let table: SeekTable
    private var decompressor: FrameDecompressor?
    private var compressed: UnsafeMutableRawBufferPointer
    private var decompressed: UnsafeMutableRawBufferPointer
    /// The frame whose checked bytes `decompressed` holds, so sequential small reads decode once.
    private var cachedFrame = -1

    /// Work counters, for tests and metrics.
    public private(set) var framesDecompressed = 0
    public private(set) var bytesDecompressed: UInt64 = 0

    public var frameCount: Int { table.frameCount }

    init(path: String, digest: BlobDigest, codec: BlobCodec) throws {
        self.path = path
        self.digest = digest
        self.codec = codec
        do {
            file = try PosixFile.openForReading(path)
        } catch {
            if case StoreError.io(_, _, let code) = error, code == ENOENT { throw StoreError.missing(digest, path: path) }
            throw error
        }
        let fileSize = try file.size
        compressed = .allocate(byteCount: 0, alignment: 16)
        decompressed = .allocate(byteCount: 0, alignment: 16)
        if codec == .raw {
            table = SeekTable()
            size = fileSize
            return
        }
        table = try Self.readTable(file, fileSize: fileSize, digest: digest)
        size = table.decompressedSize
        decompressor = try FrameDecompressor(codec: codec)
    }

    deinit {
        compressed.deallocate()
        decompressed.deallocate()
    }

    private static func readTable(_ file: PosixFile, fileSize: UInt64, digest: BlobDigest) throws -> SeekTable {
        func corrupt(_ reason: String) -> StoreError { .corruptBlob(digest, path: file.path, reason: reason) }
        guard fileSize >= UInt64(SeekTable.headerSize + SeekTable.footerSize) else { throw corrupt("too short for a seek table") }
        var footer = [UInt8](repeating: 0, count: SeekTable.footerSize)
        try footer.withUnsafeMutableBytes { (buffer) throws in
            try file.readExactly(into: buffer, at: fileSize - UInt64(SeekTable.footerSize))
        }
        let tableSize: Int
        do { tableSize = try SeekTable.tableSize(fromFooter: footer) } catch { throw corrupt("seek table footer: \(error)") }
        guard UInt64(tableSize) <= fileSize else { throw corrupt("seek table longer than the file") }
        var bytes = [UInt8](repeating: 0, count: tableSize)
        try bytes.withUnsafeMutableBytes { (buffer) throws in
            try file.readExactly(into: buffer, at: fileSize - UInt64(tableSize))
        }
        let table: SeekTable
        do { table = try SeekTable.parse(bytes) } catch { throw corrupt("seek table: \(error)") }
        guard table.compressedSize + UInt64(tableSize) == fileSize else {
            throw corrupt("frames cover \(table.compressedSize) bytes but the file has \(fileSize - UInt64(tableSize))")
        }
        return table
    }

    /// Streams original bytes `range` (half-open) to `sink`, in frame-sized pieces.
    public func read(_ range: Range<UInt64>, to sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard range.upperBound <= size else {
            throw StoreError.rangeNotSatisfiable(digest, start: range.lowerBound, end: range.upperBound, size: size)
        }
        if range.isEmpty { return }
        if codec == .raw {
            try readRaw(range, to: sink)
            return
        }
        var frame = table.frameIndex(containing: range.lowerBound)
        var position = range.lowerBound
        while position < range.upperBound {
            let frameStart = table.decompressedOffsets[frame]
            let frameEnd = table.decompressedOffsets[frame + 1]
            try loadFrame(frame)
            let from = Int(position - frameStart)
            let to = Int(min(range.upperBound, frameEnd) - frameStart)
            try sink(UnsafeRawBufferPointer(rebasing: decompressed[from..<to]))
            position = frameStart + UInt64(to)
            frame += 1
        }
    }

    /// Reads a range into one array (small reads, tests).
    public func bytes(_ range: Range<UInt64>) throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Int(range.upperBound - range.lowerBound))
        try read(range) { out.append(contentsOf: $0) }
        return out
    }

    private func readRaw(_ range: Range<UInt64>, to sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        let chunk = 1 << 20
        ensureCapacity(&decompressed, chunk)
        var position = range.lowerBound
        while position < range.upperBound {
            let count = Int(min(UInt64(chunk), range.upperBound - position))
            let buffer = UnsafeMutableRawBufferPointer(rebasing: decompressed[0..<count])
            try file.readExactly(into: buffer, at: position)
            try sink(UnsafeRawBufferPointer(buffer))
            position += UInt64(count)
        }
    }

    private func loadFrame(_ frame: Int) throws {
        if frame == cachedFrame { return }
        cachedFrame = -1
        let entry = table.entries[frame]
        ensureCapacity(&compressed, Int(entry.compressedSize))
        ensureCapacity(&decompressed, Int(entry.decompressedSize))
        let source = UnsafeMutableRawBufferPointer(rebasing: compressed[0..<Int(entry.compressedSize)])
        try file.readExactly(into: source, at: table.compressedOffsets[frame])
        let target = UnsafeMutableRawBufferPointer(rebasing: decompressed[0..<Int(entry.decompressedSize)])
        guard decompressor!.decompress(UnsafeRawBufferPointer(source), into: target),
              frameChecksum(UnsafeRawBufferPointer(target)) == entry.checksum
        else { throw StoreError.corruptFrame(digest, frame: frame, path: path) }
        framesDecompressed += 1
        bytesDecompressed += UInt64(entry.decompressedSize)
        cachedFrame = frame
    }

    private func ensureCapacity(_ buffer: inout UnsafeMutableRawBufferPointer, _ count: Int) {
        if buffer.count >= count { return }
        buffer.deallocate()
        buffer = .allocate(byteCount: count, alignment: 16)
        cachedFrame = -1
    }
}
