import Foundation

/// A bounded FIFO between threads: `put` waits while full; `takeBatch` waits while empty and
/// returns an empty batch once the queue is closed and drained.
public final class BlockingQueue<Element: Sendable>: @unchecked Sendable {
    // @unchecked: all state is guarded by `condition`.
    // At most `capacity` elements wait, so removing from the front stays cheap.
    private var items: [Element] = []
    private var closed = false
    private let capacity: Int
    private let condition = NSCondition()

    public init(capacity: Int) { self.capacity = max(1, capacity) }

    public func put(_ element: Element) {
        condition.lock()
        defer { condition.unlock() }
        while items.count >= capacity && !closed { condition.wait() }
        items.append(element)
        condition.broadcast()
    }

    /// Waits for at least one element, then takes up to `limit` of those waiting.
    public func takeBatch(limit: Int) -> [Element] {
        condition.lock()
        defer { condition.unlock() }
        while items.isEmpty && !closed { condition.wait() }
        let batch = Array(items.prefix(limit))
        items.removeFirst(batch.count)
        condition.broadcast()
        return batch
    }

    public func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }
}
