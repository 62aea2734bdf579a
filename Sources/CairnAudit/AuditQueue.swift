import Synchronization

/// Audit events waiting to be appended to a chain in batches, so recording one costs a lock and an
/// append instead of a transaction. Bounded: at most `maxPending` wait. While a batch cannot be
/// written, or the queue is full, `problem` says why, and whoever records here must refuse the
/// work it would audit (fail closed); events past the bound are dropped and counted by the caller.
public final class AuditQueue: Sendable {
    public let maxPending: Int
    /// Names the setting that bounds the queue, for `problem`.
    private let boundName: String
    private let state = Mutex(State())

    private struct State {
        var pending: [AuditEvent] = []
        /// The last write failed; cleared by the next one that succeeds.
        var failing = false
    }

    public init(maxPending: Int, boundName: String) {
        self.maxPending = maxPending
        self.boundName = boundName
    }

    /// Queues an event; returns how many now wait, or nil when the queue was full and it was dropped.
    public func record(_ event: AuditEvent) -> Int? {
        state.withLock { state in
            guard state.pending.count < maxPending else { return nil }
            state.pending.append(event)
            return state.pending.count
        }
    }

    /// How many events wait to be written.
    public var pending: Int { state.withLock { $0.pending.count } }

    /// Why nothing that must be audited may happen now; nil when healthy.
    public var problem: String? {
        state.withLock { state in
            if state.failing { return "audit records cannot be written to the index (\(state.pending.count) waiting)" }
            if state.pending.count >= maxPending { return "\(state.pending.count) audit records wait for the index (\(boundName))" }
            return nil
        }
    }

    /// Hands what is pending to `append`. On success returns how many were written and how many
    /// wait now; on failure the events stay queued, in order, for the next attempt, and it rethrows.
    @discardableResult
    public func flush(_ append: ([AuditEvent]) throws -> Void) throws -> (written: Int, waiting: Int) {
        let batch = state.withLock { $0.pending }
        if batch.isEmpty { return (0, 0) }
        do {
            try append(batch)
        } catch {
            state.withLock { $0.failing = true }
            throw error
        }
        let waiting = state.withLock { state -> Int in
            state.pending.removeFirst(batch.count)
            state.failing = false
            return state.pending.count
        }
        return (batch.count, waiting)
    }
}
