import CairnStore
import Foundation

/// Frame layouts of encapsulated instances recently asked for, by blob digest: a viewer fetches an
/// instance's frames one request at a time, and each would otherwise parse the header and every
/// fragment's item header again. Blobs never change, so an entry is never stale. Bounded by the
/// number of byte ranges held (each 16 bytes); the oldest entries go first.
final class FrameLayoutCache: @unchecked Sendable {
    // @unchecked: all state is behind the lock.
    private let lock = NSLock()
    private var entries: [BlobDigest: FrameLayout] = [:]
    private var order: [BlobDigest] = []
    private var ranges = 0
    let maxRanges: Int

    init(maxRanges: Int = 1 << 20) { self.maxRanges = maxRanges }

    func layout(for digest: BlobDigest, make: () throws -> FrameLayout) throws -> FrameLayout {
        if let cached = lock.withLock({ entries[digest] }) { return cached }
        let layout = try make()
        let size = layout.frames.reduce(0) { $0 + $1.count }
        guard size <= maxRanges else { return layout }
        lock.withLock {
            guard entries[digest] == nil else { return }
            while ranges + size > maxRanges, !order.isEmpty {
                let oldest = order.removeFirst()
                ranges -= entries.removeValue(forKey: oldest).map { $0.frames.reduce(0) { $0 + $1.count } } ?? 0
            }
            entries[digest] = layout
            order.append(digest)
            ranges += size
        }
        return layout
    }
}
