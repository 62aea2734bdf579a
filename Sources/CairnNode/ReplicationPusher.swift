import AsyncHTTPClient
import CairnFoundation
import Crypto
import CairnManifest
import CairnStore
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle

/// Outbound replication (DESIGN.md "Replication"): pushes each dataset's snapshots to the hub in
/// order, from the durable outbox the publish transaction fills. It asks the hub for its head
/// first and resends from there, so a hub that lost or never got a snapshot catches up, and a
/// restart of either side resumes where the hub is. Failures back off exponentially with full
/// jitter (100 ms to 30 s).
struct ReplicationPusher: Service {
    let store: BlobStore
    let nodeID: String
    /// Signs each push's `Cairn-Push` header: the hub reads no body it cannot tie to this node.
    let key: Curve25519.Signing.PrivateKey
    let hubURL: String
    let metrics: NodeMetrics
    let logger: Logger

    struct HubRefusal: Error, CustomStringConvertible {
        let status: UInt
        let body: String
        var description: String { "hub answered \(status): \(body)" }

        /// Refusals that the same bytes sent again cannot change: unenrolled, bad signature, a snapshot
        /// for another node or dataset, too large. Conflicts (the head moved), throttling and server
        /// errors are retried.
        var isFinal: Bool { (400..<500).contains(status) && ![408, 409, 425, 429].contains(status) }
    }

    /// Several node servers over one index push through one of them: whoever holds the
    /// `replication` lease, renewed at half its term; the others look again every second.
    static let leaseSeconds: TimeInterval = 10
    let holder = "\(ProcessInfo.processInfo.hostName)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"

    func run() async throws {
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        await cancelWhenGracefulShutdown {
            var failures = 0
            var renewAt = ContinuousClock.now
            var holding = false
            /// Renews the lease when half its term has passed (on this host's monotonic clock).
            func holdsLease() throws -> Bool {
                guard ContinuousClock.now >= renewAt else { return holding }
                let held = try store.takeLease("replication", holder: holder, for: Self.leaseSeconds)
                if held != holding {
                    let current = try store.leaseHolder("replication") ?? "none"
                    logger.info(held ? "this server pushes snapshots to the hub" : "another server pushes snapshots to the hub",
                                metadata: ["holder": "\(current)"])
                }
                holding = held
                renewAt = ContinuousClock.now + (held ? .seconds(Self.leaseSeconds / 2) : .seconds(1))
                return held
            }
            while !Task.isCancelled {
                do {
                    guard try holdsLease() else {
                        try? await Task.sleep(for: .milliseconds(100))
                        continue
                    }
                    let outbox = try store.outbox()
                    metrics.replicationLag.set(outbox.lag())
                    metrics.replicationHalted.set(Double(outbox.halted.count))
                    let pending = outbox.filter { $0.halted == nil }
                    for item in pending {
                        // A long round renews as it goes, and stops if the lease went to another server.
                        guard try holdsLease() else { break }
                        do { try await push(item.dataset, client: client) } catch let refusal as HubRefusal where refusal.isFinal {
                            try? store.outboxHalt(item.dataset, reason: refusal.description)
                            metrics.replicationFailures.increment()
                            logger.error("hub refused the push for good; not retrying until the node restarts",
                                         metadata: ["dataset": "\(item.dataset)", "error": "\(refusal)"])
                        } catch {
                            try? store.outboxFailed(item.dataset, error: "\(error)")
                            throw error
                        }
                    }
                    failures = 0
                    // `cairn dataset publish` runs in another process, so the outbox is polled: one
                    // indexed read of a tiny table, 40 times a second, for a publish that reaches
                    // the hub about 12 ms after it commits rather than 50.
                    try? await Task.sleep(for: .milliseconds(pending.isEmpty ? 25 : 0))
                } catch {
                    failures += 1
                    metrics.replicationFailures.increment()
                    logger.warning("push to hub failed; will retry", metadata: ["error": "\(error)", "attempt": "\(failures)"])
                    let ceiling = min(30.0, 0.1 * pow(2, Double(min(failures, 16))))
                    try? await Task.sleep(for: .milliseconds(Int64(Double.random(in: 0...ceiling) * 1000)))
                }
            }
        }
        // Another server takes over at once rather than when the lease lapses.
        try? store.releaseLease("replication", holder: holder)
        try? await client.shutdown()
    }

    func push(_ dataset: String, client: HTTPClient) async throws {
        guard let latest = try store.latestSnapshot(of: dataset) else { return }
        let head = try await hubHead(dataset, client: client)
        if let head, head.seq >= latest.seq {
            try store.outboxDelivered(dataset, through: head.seq)
            return
        }
        var seq = (head?.seq ?? 0) + 1
        while seq <= latest.seq {
            guard let snapshot = try store.snapshot(of: dataset, seq: seq) else { break }
            var request = HTTPClientRequest(url: "\(hubURL)/v1/nodes/\(nodeID)/datasets/\(dataset)/snapshots/\(snapshot.digest)")
            request.method = .PUT
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "Content-Encoding", value: "zstd")
            let compressed = ZstdBuffer.compress(snapshot.document)
            request.headers.add(name: PushAuthorization.headerName, value: try PushAuthorization.header(
                key: key, node: nodeID, dataset: dataset, digest: snapshot.digest, timestamp: Int64(Date().timeIntervalSince1970),
                contentLength: compressed.count))
            request.body = .bytes(ByteBuffer(bytes: compressed))
            let response = try await client.execute(request, timeout: .seconds(60))
            let body = try await response.body.collect(upTo: 1 << 20)
            guard response.status.code == 200 || response.status.code == 201 else {
                throw HubRefusal(status: response.status.code, body: String(buffer: body))
            }
            metrics.replicationPushed.increment()
            try store.outboxDelivered(dataset, through: seq)
            seq += 1
        }
    }

    func hubHead(_ dataset: String, client: HTTPClient) async throws -> (seq: Int64, digest: String)? {
        let request = HTTPClientRequest(url: "\(hubURL)/v1/nodes/\(nodeID)/datasets/\(dataset)/head")
        // Short: AsyncHTTPClient retries a refused connection until the deadline, and a hub that
        // is down should show up as a failure (metrics, `cairn stats`) within seconds.
        let response = try await client.execute(request, timeout: .seconds(3))
        let body = try await response.body.collect(upTo: 1 << 20)
        if response.status == .notFound { return nil }
        guard response.status == .ok, let head = try? JSONValue.parse(body.readableBytesView),
              let seq = head["seq"]?.int, let digest = head["digest"]?.string
        else { throw HubRefusal(status: response.status.code, body: String(buffer: body)) }
        return (seq, digest)
    }
}
