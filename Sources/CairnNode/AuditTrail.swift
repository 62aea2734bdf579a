import CairnAudit
import CairnAuth
import CairnStore
import Logging
import ServiceLifecycle
import Synchronization

/// Collects audit events from request handlers and appends them to the index's hash-chained log
/// in batches, so a read costs a lock and an append instead of a transaction. On shutdown the
/// last batch is written after the server has stopped taking requests.
///
/// Bounded: at most `maxPending` events wait. While a batch cannot be written, or the queue is
/// full, `problem` says why and the node refuses data requests (503) instead of serving them
/// unaudited; events past the bound (the refusals themselves) are counted and dropped.
public final class AuditTrail: Service, Sendable {
    private let store: BlobStore
    private let interval: Duration
    private let metrics: NodeMetrics
    private let logger: Logger
    public let maxPending: Int
    private let state = Mutex(State())

    struct State {
        var pending: [AuditEvent] = []
        /// The last write failed; cleared by the next one that succeeds.
        var failing = false
    }

    public init(store: BlobStore, interval: Duration, metrics: NodeMetrics, logger: Logger, maxPending: Int = 100_000) {
        self.store = store
        self.interval = interval
        self.metrics = metrics
        self.logger = logger
        self.maxPending = maxPending
    }

    public func record(_ event: AuditEvent) {
        let waiting = state.withLock { state -> Int? in
            guard state.pending.count < maxPending else { return nil }
            state.pending.append(event)
            return state.pending.count
        }
        if let waiting {
            metrics.auditPending.set(Double(waiting))
        } else {
            metrics.auditDropped.increment()
        }
    }

    /// Why nothing may be served now (records cannot be written, or too many wait); nil when healthy.
    public var problem: String? {
        state.withLock { state in
            if state.failing { return "audit records cannot be written to the index (\(state.pending.count) waiting)" }
            if state.pending.count >= maxPending { return "\(state.pending.count) audit records wait for the index (audit_max_pending)" }
            return nil
        }
    }

    public func run() async throws {
        metrics.auditRecords.set(Double((try? store.auditCount()) ?? 0))
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: self.interval)
                self.flush()
            }
        }
        flush()
    }

    /// Writes what is pending; on failure the events stay queued, in order, for the next attempt.
    public func flush() {
        let batch = state.withLock { $0.pending }
        if batch.isEmpty { return }
        do {
            try store.appendAudit(batch)
            let waiting = state.withLock { state -> Int in
                state.pending.removeFirst(batch.count)
                state.failing = false
                return state.pending.count
            }
            metrics.auditRecords.increment(by: Double(batch.count))
            metrics.auditPending.set(Double(waiting))
        } catch {
            state.withLock { $0.failing = true }
            metrics.auditWriteFailures.increment()
            logger.error("audit batch not written; data requests are refused until it is",
                         metadata: ["records": "\(batch.count)", "error": "\(error)"])
        }
    }
}

/// Polls the index for tokens revoked by `cairn token revoke` (another process) and updates the
/// disk-free gauge. A revocation takes effect within one interval.
struct NodeHousekeeping: Service {
    let store: BlobStore
    let verifier: TokenVerifier
    let metrics: NodeMetrics
    let interval: Duration
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            var lastRevocation: Int64 = 0
            while !Task.isCancelled {
                do {
                    let (ids, last) = try store.revokedTokens(after: lastRevocation)
                    verifier.revoke(ids)
                    lastRevocation = last
                } catch {
                    logger.error("cannot read revoked tokens", metadata: ["error": "\(error)"])
                }
                if let free = store.freeBytes { metrics.diskFree.set(Double(free)) }
                try? await Task.sleep(for: interval)
            }
        }
    }
}
