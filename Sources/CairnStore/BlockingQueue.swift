import Foundation

/// A bounded FIFO between threads: `put` waits while full, `take` waits while empty and returns
/// nil once the queue is closed and drained.
public final class BlockingQueue<Element: Sendable>: @unchecked Sendable {
    // @unchecked: all state is guarded by `condition`.
    private var items: [Element] = []
    private var head = 0
    private var closed = false
    private let capacity: Int
    private let condition = NSCondition()

    public init(capacity: Int) { self.capacity = max(1, capacity) }

    public func put(_ element: Element) {
        condition.lock()
        defer { condition.unlock() }
        while items.count - head >= capacity && !closed { condition.wait() }
        items.append(element)
        condition.broadcast()
    }

    public func take() -> Element? {
        condition.lock()
        defer { condition.unlock() }
        while head == items.count && !closed { condition.wait() }
        guard head < items.count else { return nil }
        let element = items[head]
        head += 1
        if head > 1024 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        condition.broadcast()
        return element
    }

    /// Waits for at least one element, then takes up to `limit` of those waiting.
    public func takeBatch(limit: Int) -> [Element] {
        condition.lock()
        defer { condition.unlock() }
        while head == items.count && !closed { condition.wait() }
        let count = min(limit, items.count - head)
        let batch = Array(items[head..<head + count])
        head += count
        if head > 1024 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
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
