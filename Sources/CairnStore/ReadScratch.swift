import CairnBlobs
import Synchronization

/// Decompression contexts and frame buffers that a reader borrows, so opening a reader costs
/// no allocation: creating a zstd context and faulting in fresh buffers showed up as ~10% of
/// random range reads (Tools/bench).
final class ReadScratch: @unchecked Sendable {
    // @unchecked: a scratch is owned by exactly one reader at a time; the pool hands it over under its lock.
    private var frameDecoder: FrameDecoder?
    var compressed = UnsafeMutableRawBufferPointer.allocate(byteCount: 0, alignment: 16)
    var decompressed = UnsafeMutableRawBufferPointer.allocate(byteCount: 0, alignment: 16)

    deinit {
        compressed.deallocate()
        decompressed.deallocate()
    }

    func decoder() throws -> FrameDecoder {
        if let frameDecoder { return frameDecoder }
        let created = try FrameDecoder()
        frameDecoder = created
        return created
    }

    /// Bytes of buffer held, to keep pools from hoarding buffers grown for huge frames.
    var retainedBytes: Int { decompressed.count + (frameDecoder?.retainedBytes ?? 0) }

    static func ensure(_ buffer: inout UnsafeMutableRawBufferPointer, _ count: Int) {
        if buffer.count >= count { return }
        buffer.deallocate()
        buffer = .allocate(byteCount: count, alignment: 64)
    }
}

/// A small free list of `ReadScratch`.
final class ReadScratchPool: Sendable {
    private let free = Mutex<[ReadScratch]>([])
    private let limit: Int

    init(limit: Int = 64) { self.limit = limit }

    func take() -> ReadScratch {
        free.withLock { $0.popLast() } ?? ReadScratch()
    }

    func give(_ scratch: ReadScratch) {
        // Buffers grown for unusually large frames are not kept.
        guard scratch.retainedBytes <= 8 << 20 else { return }
        free.withLock { if $0.count < limit { $0.append(scratch) } }
    }
}
