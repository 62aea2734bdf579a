import CairnBlobs
import Crypto
import Glibc

/// Which encoding a write should produce. `auto` is zstd unless compression saves under
/// `autoRawThreshold` of the bytes (JPEG, JPEG 2000 pixel data), which are stored raw.
public enum CodecChoice: String, Sendable, CaseIterable {
    case auto, zstd, lz4, raw
}

public struct WriteOptions: Sendable {
    public var codec: CodecChoice
    /// Compression level; nil takes the codec's default.
    public var level: Int?
    /// Largest number of original bytes in one frame; nil takes the store's setting.
    public var frameSize: Int?
    /// With `codec` auto: the profile's codec, level and pixel stage (nil: plain zstd frames).
    public var profile: StorageProfile?

    /// The default frame size, chosen from `Tools/bench` measurements (see README).
    public static let defaultFrameSize = 64 * 1024
    /// Compression must save at least this fraction for `auto` to keep it.
    public static let autoRawThreshold = 0.05
    /// Frame sizes a store accepts.
    public static let frameSizes = 4096...SeekTable.maxFrameSize

    public init(codec: CodecChoice = .auto, level: Int? = nil, frameSize: Int? = nil, profile: StorageProfile? = nil) {
        self.codec = codec
        self.level = level
        self.frameSize = frameSize
        self.profile = profile
    }

    /// The profile that applies: only `auto` writes take one.
    var effectiveProfile: StorageProfile? { codec == .auto ? profile : nil }

    /// The frame size a write uses under a store whose setting is `storeFrameSize`.
    func frameSize(store storeFrameSize: Int) -> Int {
        let size = frameSize ?? storeFrameSize
        return effectiveProfile.map { max(size, $0.minimumFrameSize) } ?? size
    }
}

/// What a finished write produced, before it is linked into the store.
public struct WrittenBlob: Sendable {
    public var digest: BlobDigest
    public var size: UInt64
    public var storedSize: UInt64
    public var codec: BlobCodec
    public var frames: Int
    /// The profile it was written under (nil: plain frames or raw).
    public var profile: StorageProfile?
}

/// Streams original bytes into a temp file: hashes them (SHA-256), cuts them into frames at
/// `frameSize` and at caller-given cut points, compresses each frame (frames of native pixel data
/// through the profile's pixel stage, cut at whole rows), records its checksum, and appends the
/// seek table. Memory is bounded by one frame.
final class BlobWriter {
    private let tempPath: String
    private var output: TempFileWriter
    /// The temp file; holds the writer's lock until it is closed.
    var file: PosixFile { output.file }
    private let options: WriteOptions
    private var codec: BlobCodec
    private var encoder: FrameEncoder?
    private let profile: StorageProfile?
    private let pixels: PixelRegion?
    /// Original bytes the current frame may hold (smaller inside pixel data: whole rows).
    private var frameLimit = 0
    private var pixelFrames = 0
    private var hasher = SHA256()
    private var table = SeekTable()
    private let scratch: WriteScratch
    private let pool: WriteScratchPool?
    private var frameBuffer: UnsafeMutableRawBufferPointer { scratch.frameBuffer }
    private var frameFill = 0
    private var totalIn: UInt64 = 0
    /// Original offsets where a frame must start (e.g. DICOM Pixel Data), ascending.
    private var cutPoints: [UInt64]
    private var nextCut = 0
    private let isAuto: Bool
    private var finished = false

    /// Bytes after which `auto` gives up on compression if it is not paying off.
    private static let autoProbeBytes: UInt64 = 4 * 1024 * 1024

    init(tempPath: String, options: WriteOptions, frameSize: Int, cutPoints: [UInt64] = [],
         pixels: PixelRegion? = nil, pool: WriteScratchPool? = nil) throws {
        guard WriteOptions.frameSizes.contains(frameSize) else {
            throw StoreError.invalidArgument("frame size \(frameSize) is outside 4 KiB ... 64 MiB")
        }
        self.tempPath = tempPath
        self.options = options
        profile = options.effectiveProfile
        self.pixels = profile == nil ? nil : pixels
        // The pixel data's end is a cut too, so no frame holds both pixels and what follows them.
        self.cutPoints = (cutPoints + (self.pixels.map { [$0.range.lowerBound, $0.range.upperBound] } ?? [])).sorted()
        isAuto = options.codec == .auto
        switch options.codec {
        case .auto: codec = profile?.codec ?? .zstd
        case .zstd: codec = .zstd
        case .lz4: codec = .lz4
        case .raw: codec = .raw
        }
        let level = options.level ?? profile?.level ?? codec.defaultLevel
        let key = WriteScratch.Key(codec: codec, level: level, frameSize: frameSize)
        self.pool = pool
        scratch = try pool?.take(key) ?? WriteScratch(key)
        encoder = scratch.encoder
        frameLimit = frameSize
        output = try TempFileWriter(path: tempPath, staging: scratch.outputStaging)
        guard output.file.tryLockExclusive() else { throw StoreError.io(op: "lock", path: tempPath, errno: errno) }
    }

    deinit { pool?.give(scratch) }

    /// Appends original bytes.
    func write(_ bytes: UnsafeRawBufferPointer) throws {
        hasher.update(bufferPointer: bytes)
        var rest = bytes
        while !rest.isEmpty {
            if codec == .raw && frameFill == 0 && rest.count >= frameBuffer.count {
                try output.append(rest)
                totalIn += UInt64(rest.count)
                return
            }
            if frameFill == 0 { frameLimit = limit(forFrameAt: totalIn) }
            var room = frameLimit - frameFill
            if nextCut < cutPoints.count {
                let position = totalIn + UInt64(frameFill)
                while nextCut < cutPoints.count && cutPoints[nextCut] <= position { nextCut += 1 }
                if nextCut < cutPoints.count {
                    room = min(room, Int(min(cutPoints[nextCut] - position, UInt64(Int.max))))
                }
            }
            let take = min(room, rest.count)
            (frameBuffer.baseAddress! + frameFill).copyMemory(from: rest.baseAddress!, byteCount: take)
            frameFill += take
            rest = UnsafeRawBufferPointer(rebasing: rest[take...])
            if frameFill == frameLimit || take == room {
                try flushFrame()
            }
        }
    }

    /// Inside native pixel data a frame holds whole rows (as many as fit), so that every pixel frame
    /// starts at a row and its predictions line up with the image.
    private func limit(forFrameAt position: UInt64) -> Int {
        guard let pixels, pixels.range.contains(position) else { return frameBuffer.count }
        let row = pixels.geometry.rowBytes
        return row <= frameBuffer.count ? frameBuffer.count / row * row : frameBuffer.count
    }

    /// The geometry to transform the current frame with, when it lies wholly inside pixel data.
    private func pixelGeometry(frameStart: UInt64) -> PixelGeometry? {
        guard let pixels, pixels.range.lowerBound <= frameStart,
              frameStart + UInt64(frameFill) <= pixels.range.upperBound else { return nil }
        return pixels.geometry
    }

    private func flushFrame() throws {
        guard frameFill > 0 else { return }
        let original = UnsafeRawBufferPointer(rebasing: frameBuffer[0..<frameFill])
        if let encoder {
            let (frame, isPixelFrame) = try encoder.encode(original, pixels: pixelGeometry(frameStart: totalIn), profile: profile)
            if isPixelFrame { pixelFrames += 1 }
            try output.append(frame)
            table.append(.init(compressedSize: UInt32(frame.count), decompressedSize: UInt32(frameFill),
                               checksum: frameChecksum(original)))
        } else {
            try output.append(original)
        }
        totalIn += UInt64(frameFill)
        frameFill = 0
        if isAuto && codec != .raw && totalIn >= Self.autoProbeBytes && table.frameCount > 0 && !paysOff(margin: 0.02) {
            try switchToRaw()
        }
    }

    private func paysOff(margin: Double) -> Bool {
        Double(table.compressedSize) <= Double(table.decompressedSize) * (1 - margin)
    }

    /// Rewrites the frames written so far as raw bytes and continues raw.
    private func switchToRaw() throws {
        try output.finish()
        let rawPath = tempPath + ".raw"
        let rawOutput = try TempFileWriter(path: rawPath, staging: scratch.outputStaging)
        let rawFile = rawOutput.file
        do {
            guard rawFile.tryLockExclusive() else { throw StoreError.io(op: "lock", path: rawPath, errno: errno) }
            let source = try PosixFile.openForReading(tempPath)
            let decoder = try FrameDecoder()
            var compressed = [UInt8](repeating: 0, count: 0)
            for (index, entry) in table.entries.enumerated() {
                compressed = [UInt8](repeating: 0, count: Int(entry.compressedSize))
                try compressed.withUnsafeMutableBytes { (buffer) throws in
                    try source.readExactly(into: buffer, at: table.compressedOffsets[index])
                }
                let restored = UnsafeMutableRawBufferPointer(rebasing: frameBuffer[0..<Int(entry.decompressedSize)])
                guard compressed.withUnsafeBytes({ decoder.decode($0, into: restored) }),
                      frameChecksum(UnsafeRawBufferPointer(restored)) == entry.checksum else {
                    throw StoreError.codec("re-reading frame \(index) of \(tempPath) failed")
                }
                try rawOutput.append(UnsafeRawBufferPointer(restored))
            }
        } catch {
            FileSystem.remove(rawPath)
            throw error
        }
        guard rename(rawPath, tempPath) == 0 else {
            let code = errno
            FileSystem.remove(rawPath)
            throw StoreError.io(op: "rename", path: rawPath, errno: code)
        }
        output = rawOutput
        codec = .raw
        encoder = nil
        pixelFrames = 0
        table = SeekTable()
    }

    /// Flushes the last frame and writes the seek table; the caller fsyncs `file`.
    func finish() throws -> WrittenBlob {
        precondition(!finished)
        try flushFrame()
        finished = true
        if isAuto && codec != .raw && (totalIn == 0 || !paysOff(margin: WriteOptions.autoRawThreshold)) {
            try switchToRaw()
        }
        var stored = totalIn
        if codec != .raw {
            let encoded = table.encoded()
            try encoded.withUnsafeBytes { (buffer) throws in try output.append(buffer) }
            stored = table.compressedSize + UInt64(encoded.count)
        }
        try output.finish()
        return WrittenBlob(digest: BlobDigest(hasher.finalize()), size: totalIn, storedSize: stored,
                           codec: pixelFrames > 0 ? .pixel : codec, frames: codec == .raw ? 0 : table.frameCount,
                           profile: codec == .raw ? nil : profile)
    }
}
