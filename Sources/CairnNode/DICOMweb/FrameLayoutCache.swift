import CairnStore
import Foundation

/// Frame layouts of encapsulated instances recently asked for, by blob digest: a viewer fetches an
/// instance's frames one request at a time, and each would otherwise parse the header and every
/// fragment's item header again. Blobs never change, so an entry is never stale. Bounded by an
/// estimate of the memory the entries hold; the oldest go first.
final class FrameLayoutCache: @unchecked Sendable {
    // @unchecked: all state is behind the lock.
    private let lock = NSLock()
    private var entries: [BlobDigest: FrameLayout] = [:]
    /// Insertion order; `head` is the oldest still listed (removal from the front is amortised).
    private var order: [BlobDigest] = []
    private var head = 0
    private var bytes = 0
    let maxBytes: Int

    init(maxBytes: Int = 32 << 20) { self.maxBytes = maxBytes }

    /// What an entry costs: the dictionary and order slots, the arrays, the strings, each range.
    static func cost(_ layout: FrameLayout) -> Int {
        256 + layout.frames.count * 48 + layout.frames.reduce(0) { $0 + $1.count } * 16
    }

    func layout(for digest: BlobDigest, make: () throws -> FrameLayout) throws -> FrameLayout {
        if let cached = lock.withLock({ entries[digest] }) { return cached }
        let layout = try make()
        let cost = Self.cost(layout)
        guard cost <= maxBytes else { return layout }
        lock.withLock {
            guard entries[digest] == nil else { return }
            while bytes + cost > maxBytes, head < order.count {
                if let evicted = entries.removeValue(forKey: order[head]) { bytes -= Self.cost(evicted) }
                head += 1
            }
            if head > 1024 && head * 2 > order.count {
                order.removeFirst(head)
                head = 0
            }
            entries[digest] = layout
            order.append(digest)
            bytes += cost
        }
        return layout
    }
}
