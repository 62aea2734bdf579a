import CairnBlobs
import Synchronization

/// A frame buffer and compression context that writers reuse: a zstd level-3 context allocates
/// and clears about a megabyte of tables when first used, once per file without a pool.
final class WriteScratch: @unchecked Sendable {
    // @unchecked: owned by exactly one writer at a time; the pool hands it over under its lock.
    struct Key: Hashable {
        var codec: BlobCodec
        var level: Int
        var frameSize: Int
    }

    let key: Key
    let frameBuffer: UnsafeMutableRawBufferPointer
    /// Aligned staging for O_DIRECT output (see `TempFileWriter`).
    let outputStaging: UnsafeMutableRawBufferPointer
    let encoder: FrameEncoder?

    static let outputStagingSize = 1 << 20

    init(_ key: Key) throws {
        self.key = key
        frameBuffer = .allocate(byteCount: key.frameSize, alignment: 64)
        outputStaging = .allocate(byteCount: Self.outputStagingSize, alignment: TempFileWriter.alignment)
        encoder = key.codec == .raw ? nil
            : try FrameEncoder(codec: key.codec, level: key.level, maxFrameSize: key.frameSize)
    }

    deinit {
        frameBuffer.deallocate()
        outputStaging.deallocate()
    }
}

final class WriteScratchPool: Sendable {
    private let free = Mutex<[WriteScratch.Key: [WriteScratch]]>([:])
    private let limitPerKey = 16

    func take(_ key: WriteScratch.Key) throws -> WriteScratch {
        if let pooled = free.withLock({ $0[key]?.popLast() }) { return pooled }
        return try WriteScratch(key)
    }

    func give(_ scratch: WriteScratch) {
        free.withLock { pool in
            if pool[scratch.key, default: []].count < limitPerKey { pool[scratch.key, default: []].append(scratch) }
        }
    }
}
