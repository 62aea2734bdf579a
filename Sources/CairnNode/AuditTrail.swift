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
    private let queue: AuditQueue

    public init(store: BlobStore, interval: Duration, metrics: NodeMetrics, logger: Logger, maxPending: Int = 100_000) {
        self.store = store
        self.interval = interval
        self.metrics = metrics
        self.logger = logger
        queue = AuditQueue(maxPending: maxPending, boundName: "audit_max_pending")
    }

    public var maxPending: Int { queue.maxPending }

    public func record(_ event: AuditEvent) {
        if let waiting = queue.record(event) {
            metrics.auditPending.set(Double(waiting))
        } else {
            metrics.auditDropped.increment()
        }
    }

    /// Why nothing may be served now (records cannot be written, or too many wait); nil when healthy.
    public var problem: String? { queue.problem }

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
        do {
            let (written, waiting) = try queue.flush { try store.appendAudit($0) }
            if written == 0 { return }
            metrics.auditRecords.increment(by: Double(written))
            metrics.auditPending.set(Double(waiting))
        } catch {
            metrics.auditWriteFailures.increment()
            logger.error("audit batch not written; data requests are refused until it is", metadata: ["error": "\(error)"])
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
