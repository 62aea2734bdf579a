import CairnBlobs
import Crypto
import Glibc
import NIOCore

/// Reads original bytes back from one blob file. Ranged reads decompress only the frames that
/// overlap the range and check each frame's XXH64 before any of its bytes reach the caller.
/// Not thread-safe: one reader per thread (they are cheap). A reader borrows decompression
/// scratch only for the duration of a read, so thousands of open readers (slow HTTP clients)
/// hold no codec state while they wait.
public final class BlobReader {
    public let digest: BlobDigest
    public let codec: BlobCodec
    public let path: String
    /// Original size in bytes.
    public let size: UInt64
    private let file: any BlobSource
    private let table: SeekTable
    private let pool: ReadScratchPool
    /// Decoded frames shared with every reader of the process: consulted before decoding, and
    /// given each frame decoded here once its checksum passed.
    private let frames: FrameCache?

    /// Work counters, for tests and metrics.
    public private(set) var framesDecompressed = 0
    public private(set) var bytesDecompressed: UInt64 = 0

    public var frameCount: Int { table.frameCount }
    /// Bytes of the blob file (frames and seek table; the original size for raw blobs).
    public var storedSize: UInt64 { codec == .raw ? size : table.compressedSize + UInt64(table.encodedSize) }

    convenience init(path: String, digest: BlobDigest, codec: BlobCodec, pool: ReadScratchPool? = nil, tables: SeekTableCache? = nil,
                     frames: FrameCache? = nil) throws {
        let file: PosixFile
        do {
            file = try PosixFile.openForReading(path)
        } catch {
            if case StoreError.io(_, _, let code) = error, code == ENOENT { throw StoreError.missing(digest, path: path) }
            throw error
        }
        let (inode, fileSize) = try file.identity
        try self.init(source: file, identity: inode, fileSize: fileSize, digest: digest, codec: codec, pool: pool, tables: tables,
                      frames: frames)
    }

    /// A reader over any source of the stored bytes. `identity` and `fileSize` key the seek-table
    /// cache: a file replaced under the same digest (recompress) must not meet a stale table.
    init(source: any BlobSource, identity: UInt64, fileSize: UInt64, digest: BlobDigest, codec: BlobCodec,
         pool: ReadScratchPool? = nil, tables: SeekTableCache? = nil, frames: FrameCache? = nil) throws {
        self.path = source.path
        self.frames = frames?.isEnabled == true ? frames : nil
        self.digest = digest
        self.codec = codec
        file = source
        self.pool = pool ?? ReadScratchPool(limit: 1)
        if codec == .raw {
            table = SeekTable()
            size = fileSize
            return
        }
        if let tables {
            table = try tables.table(for: digest, inode: identity, fileSize: fileSize) { [file] in
                try Self.readTable(file, fileSize: fileSize, digest: digest)
            }
        } else {
            table = try Self.readTable(file, fileSize: fileSize, digest: digest)
        }
        size = table.decompressedSize
    }

    private static func readTable(_ file: any BlobSource, fileSize: UInt64, digest: BlobDigest) throws -> SeekTable {
        do {
            return try SeekTable.read(fileSize: fileSize) { try readTail(file, count: $0, fileSize: fileSize) }
        } catch let error as SeekTable.TrailerError {
            throw StoreError.corruptBlob(digest, path: file.path, reason: "\(error)")
        }
    }

    private static func readTail(_ file: any BlobSource, count: Int, fileSize: UInt64) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        try bytes.withUnsafeMutableBytes { try file.readExactly(into: $0, at: fileSize - UInt64(count)) }
        return bytes
    }

    /// True when the stored bytes come over the network (a bucket): streaming callers `prefetch`.
    public var readsOverNetwork: Bool { file is ObjectBlobSource }

    /// The stored bytes that reading original bytes `range` touches: the frames overlapping it
    /// (for raw blobs, the range itself).
    func storedSpan(of range: Range<UInt64>) -> Range<UInt64> {
        if codec == .raw || range.isEmpty { return range }
        let first = table.frameIndex(containing: range.lowerBound), last = table.frameIndex(containing: range.upperBound - 1)
        return table.compressedOffsets[first]..<table.compressedOffsets[last + 1]
    }

    /// For a blob in a bucket: fetches what reading original bytes `range` needs without blocking
    /// the caller's thread, and starts on what reading `next` will need. A no-op for files.
    public func prefetch(_ range: Range<UInt64>, next: Range<UInt64>?) async throws {
        guard let source = file as? ObjectBlobSource else { return }
        guard range.upperBound <= size, (next?.upperBound ?? 0) <= size else { return }
        try await source.prefetch(storedSpan(of: range), next: next.map(storedSpan(of:)))
    }

    /// As `prefetch`, for stored bytes (`readStored`).
    public func prefetchStored(_ range: Range<UInt64>, next: Range<UInt64>?) async throws {
        guard let source = file as? ObjectBlobSource else { return }
        try await source.prefetch(range, next: next)
    }

    /// Streams original bytes `range` (half-open) to `sink`, in frame-sized pieces.
    public func read(_ range: Range<UInt64>, to sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        try read(range, direct: nil) { _, piece in try sink(piece) }
    }

    /// The read loop. Cached frames are copied out of the frame cache; the others are read from
    /// the file in runs of up to `batchBytes` compressed, decoded and checked. With `direct`
    /// (exactly the range's length) and no frame cache, frames that lie wholly inside the range
    /// are decoded straight into it; everything else reaches `sink` with its position.
    private func read(_ range: Range<UInt64>, direct: UnsafeMutableRawBufferPointer?,
                      to sink: (UInt64, UnsafeRawBufferPointer) throws -> Void) throws {
        guard range.upperBound <= size else {
            throw StoreError.rangeNotSatisfiable(digest, start: range.lowerBound, end: range.upperBound, size: size)
        }
        if range.isEmpty { return }
        let scratch = pool.take()
        defer { pool.give(scratch) }
        if codec == .raw {
            try readRaw(range, scratch: scratch, to: sink)
            return
        }
        let decompressor = try scratch.decoder()
        let lastFrame = table.frameIndex(containing: range.upperBound - 1)
        var frame = table.frameIndex(containing: range.lowerBound)
        // The frames whose compressed bytes are in `scratch.compressed`, from `batchStart` on.
        var batch = 0..<0
        var batchStart: UInt64 = 0
        while frame <= lastFrame {
            let frameStart = table.decompressedOffsets[frame], frameEnd = table.decompressedOffsets[frame + 1]
            let length = Int(frameEnd - frameStart)
            let key = FrameCache.Key(digest: digest, offset: frameStart)
            if let frames, let cached = frames.frame(key, length: length) {
                try cached.withUnsafeReadableBytes { try deliver(frameStart, $0, range: range, to: sink) }
                frame += 1
                continue
            }
            if !batch.contains(frame) {
                // One pread for a run of uncached frames (up to ~1 MiB compressed): whole-blob
                // reads of 64 KiB frames otherwise spend a syscall per 30 KiB.
                var end = frame + 1
                while end <= lastFrame, table.compressedOffsets[end + 1] - table.compressedOffsets[frame] <= Self.batchBytes,
                      !(frames?.contains(FrameCache.Key(digest: digest, offset: table.decompressedOffsets[end]),
                                         length: Int(table.decompressedOffsets[end + 1] - table.decompressedOffsets[end])) ?? false) {
                    end += 1
                }
                batchStart = table.compressedOffsets[frame]
                let count = Int(table.compressedOffsets[end] - batchStart)
                ReadScratch.ensure(&scratch.compressed, count)
                try file.readExactly(into: UnsafeMutableRawBufferPointer(rebasing: scratch.compressed[0..<count]), at: batchStart)
                batch = frame..<end
            }
            let from = Int(table.compressedOffsets[frame] - batchStart), to = Int(table.compressedOffsets[frame + 1] - batchStart)
            let source = UnsafeRawBufferPointer(rebasing: scratch.compressed[from..<to])
            if let frames {
                // Decoded into a buffer of its own, which the cache keeps once the checksum passed.
                var bytes = ByteBufferAllocator().buffer(capacity: length)
                try bytes.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { target in
                    try decode(frame, from: source, into: UnsafeMutableRawBufferPointer(rebasing: target[0..<length]),
                               decompressor: decompressor)
                    return length
                }
                frames.insert(key, bytes: bytes)
                try bytes.withUnsafeReadableBytes { try deliver(frameStart, $0, range: range, to: sink) }
            } else if let direct, frameStart >= range.lowerBound, frameEnd <= range.upperBound {
                let offset = Int(frameStart - range.lowerBound)
                try decode(frame, from: source, into: UnsafeMutableRawBufferPointer(rebasing: direct[offset..<(offset + length)]),
                           decompressor: decompressor)
            } else {
                ReadScratch.ensure(&scratch.decompressed, length)
                let target = UnsafeMutableRawBufferPointer(rebasing: scratch.decompressed[0..<length])
                try decode(frame, from: source, into: target, decompressor: decompressor)
                try deliver(frameStart, UnsafeRawBufferPointer(target), range: range, to: sink)
            }
            frame += 1
        }
    }

    /// Hands `sink` the part of a decoded frame (starting at original offset `frameStart`) that
    /// lies inside `range`.
    private func deliver(_ frameStart: UInt64, _ bytes: UnsafeRawBufferPointer, range: Range<UInt64>,
                         to sink: (UInt64, UnsafeRawBufferPointer) throws -> Void) throws {
        let from = Int(max(frameStart, range.lowerBound) - frameStart)
        let to = Int(min(frameStart + UInt64(bytes.count), range.upperBound) - frameStart)
        try sink(frameStart + UInt64(from), UnsafeRawBufferPointer(rebasing: bytes[from..<to]))
    }

    /// Compressed bytes fetched with one read when a range spans several frames.
    static let batchBytes: UInt64 = 1 << 20

    /// Where a streamed chunk starting at `position` should end: at the end of the frame holding
    /// `position` once at least `minimum` bytes are covered, so consecutive chunks never decode
    /// a frame twice. Never past `limit`.
    public func chunkEnd(from position: UInt64, minimum: UInt64, limit: UInt64) -> UInt64 {
        let target = min(limit, position + minimum)
        if codec == .raw || target >= limit { return target }
        let frame = table.frameIndex(containing: target - 1)
        return min(limit, table.decompressedOffsets[frame + 1])
    }

    /// The end of the frame holding original byte `position` (the blob's size for raw blobs): a
    /// read up to there decodes nothing more than a read of `position` alone.
    public func frameEnd(containing position: UInt64) -> UInt64 {
        if codec == .raw || position >= size { return size }
        return table.decompressedOffsets[table.frameIndex(containing: position) + 1]
    }

    /// Copies original bytes `range` into `destination` (exactly the range's length). Raw blobs are
    /// read straight into it; compressed ones are copied out of their checked frames.
    public func read(_ range: Range<UInt64>, into destination: UnsafeMutableRawBufferPointer) throws {
        precondition(destination.count == Int(range.upperBound - range.lowerBound), "destination must fit the range")
        if codec == .raw {
            guard range.upperBound <= size else {
                throw StoreError.rangeNotSatisfiable(digest, start: range.lowerBound, end: range.upperBound, size: size)
            }
            try file.readExactly(into: destination, at: range.lowerBound)
            return
        }
        // Frames wholly inside the range are decoded in place; the partial ones at either end
        // arrive here with their position.
        try read(range, direct: destination) { start, piece in
            let offset = Int(start - range.lowerBound)
            UnsafeMutableRawBufferPointer(rebasing: destination[offset..<(offset + piece.count)]).copyMemory(from: piece)
        }
    }

    /// Copies bytes of the blob file as stored (for zstd: the seekable-format frames and seek
    /// table), for clients that accept the encoding and decode it themselves.
    public func readStored(_ range: Range<UInt64>, into destination: UnsafeMutableRawBufferPointer) throws {
        precondition(destination.count == Int(range.upperBound - range.lowerBound), "destination must fit the range")
        try file.readExactly(into: destination, at: range.lowerBound)
    }

    /// True when the blob's zstd frames carry their own content checksums (blobs written since
    /// that became the default do), so a stock decoder detects damage in the stored bytes. One
    /// writer writes every frame of a blob, so the first frame's header speaks for all.
    public func framesCarryChecksums() throws -> Bool {
        guard codec == .zstd, table.frameCount > 0 else { return false }
        var header = [UInt8](repeating: 0, count: 5)
        try header.withUnsafeMutableBytes { try file.readExactly(into: $0, at: 0) }
        // Magic 0xFD2FB528 little-endian, then the Frame_Header_Descriptor: bit 2 = checksum flag.
        return header[0..<4] == [0x28, 0xB5, 0x2F, 0xFD] && header[4] & 0x04 != 0
    }

    /// Reads the whole blob and checks that it hashes to its digest (frame checksums are checked
    /// on the way): what `verify` does, and what a raw blob, which has no frame checksums, needs
    /// before its bytes can be trusted.
    public func checkDigest() throws {
        var hasher = SHA256()
        try read(0..<size) { hasher.update(bufferPointer: $0) }
        let actual = BlobDigest(hasher.finalize())
        guard actual == digest else { throw StoreError.digestMismatch(expected: digest, actual: actual, path: path) }
    }

    /// Reads a range into one array (small reads, tests).
    public func bytes(_ range: Range<UInt64>) throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Int(range.upperBound - range.lowerBound))
        try read(range) { out.append(contentsOf: $0) }
        return out
    }

    private func readRaw(_ range: Range<UInt64>, scratch: ReadScratch, to sink: (UInt64, UnsafeRawBufferPointer) throws -> Void) throws {
        let chunk = 1 << 20
        ReadScratch.ensure(&scratch.decompressed, chunk)
        var position = range.lowerBound
        while position < range.upperBound {
            let count = Int(min(UInt64(chunk), range.upperBound - position))
            let buffer = UnsafeMutableRawBufferPointer(rebasing: scratch.decompressed[0..<count])
            try file.readExactly(into: buffer, at: position)
            try sink(position, UnsafeRawBufferPointer(buffer))
            position += UInt64(count)
        }
    }

    /// Decompresses one frame into the scratch buffer and checks its XXH64 before anyone sees it.
    /// `target` is exactly the frame's original size; on a checksum mismatch it holds garbage and
    /// the error means no caller may use it.
    private func decode(_ frame: Int, from source: UnsafeRawBufferPointer, into target: UnsafeMutableRawBufferPointer,
                        decompressor: FrameDecoder) throws {
        let entry = table.entries[frame]
        guard decompressor.decode(source, into: target),
              frameChecksum(UnsafeRawBufferPointer(target)) == entry.checksum
        else { throw StoreError.corruptFrame(digest, frame: frame, path: path) }
        framesDecompressed += 1
        bytesDecompressed += UInt64(entry.decompressedSize)
    }
}
