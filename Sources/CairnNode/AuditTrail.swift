import CairnAudit
import CairnAuth
import CairnStore
import Logging
import ServiceLifecycle
import Synchronization

/// Collects audit events from request handlers and appends them to the index's hash-chained log
/// in batches, so a read costs a lock and an append instead of a transaction. On shutdown the
/// last batch is written after the server has stopped taking requests.
public final class AuditTrail: Service, Sendable {
    private let store: BlobStore
    private let interval: Duration
    private let metrics: NodeMetrics
    private let logger: Logger
    private let pending = Mutex<[AuditEvent]>([])

    public init(store: BlobStore, interval: Duration, metrics: NodeMetrics, logger: Logger) {
        self.store = store
        self.interval = interval
        self.metrics = metrics
        self.logger = logger
    }

    public func record(_ event: AuditEvent) {
        pending.withLock { $0.append(event) }
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

    /// Writes what is pending; on failure the events stay queued for the next attempt.
    public func flush() {
        let batch = pending.withLock { events -> [AuditEvent] in
            defer { events.removeAll(keepingCapacity: true) }
            return events
        }
        metrics.auditPending.set(Double(0))
        if batch.isEmpty { return }
        do {
            try store.appendAudit(batch)
            metrics.auditRecords.increment(by: Double(batch.count))
        } catch {
            metrics.auditWriteFailures.increment()
            logger.error("audit batch not written; will retry", metadata: ["records": "\(batch.count)", "error": "\(error)"])
            pending.withLock { $0.insert(contentsOf: batch, at: 0) }
            metrics.auditPending.set(Double(batch.count))
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
