import CairnHTTP
import CairnStore
import Prometheus
import Synchronization

/// The node's Prometheus metrics, in a registry of its own (no process-global metrics system),
/// exposed at `/metrics`.
public final class NodeMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    let bytesServed: Counter
    let framesDecompressed: Counter
    let checksumFailures: Counter
    let uploadBytes: Counter
    let diskFree: Gauge
    let auditRecords: Gauge
    let auditPending: Gauge
    let auditWriteFailures: Counter
    let auditDropped: Counter
    let replicationLag: Gauge
    let replicationFailures: Counter
    let replicationPushed: Counter
    let replicationHalted: Gauge
    let frameCacheCapacity: Gauge
    let frameCacheBytes: Gauge
    let frameCacheFrames: Gauge
    let frameCacheHits: Counter
    let frameCacheMisses: Counter
    let frameCacheEvictions: Counter
    /// The frame cache's totals at the last scrape (its counters are the cache's own; these move by the difference).
    private let frameCacheReported = Mutex(FrameCache.Statistics())

    static let latencyBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2.5),
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5), .seconds(30),
    ]

    public init() {
        func descriptor(_ name: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(namespace: "cairn", metricName: name, unitName: unit, helpText: help)
        }
        bytesServed = registry.makeCounter(descriptor: descriptor("bytes_served", "total", "Original bytes sent in blob responses"))
        framesDecompressed = registry.makeCounter(descriptor: descriptor("frames_decompressed", "total", "Blob frames decompressed and checked"))
        checksumFailures = registry.makeCounter(descriptor: descriptor("checksum_failures", "total", "Frames that failed their checksum; never served"))
        uploadBytes = registry.makeCounter(descriptor: descriptor("upload_bytes", "total", "Bytes received in stored uploads"))
        diskFree = registry.makeGauge(descriptor: descriptor("disk_free", "bytes", "Free bytes on the data directory's filesystem"))
        auditRecords = registry.makeGauge(descriptor: descriptor("audit_log", "records", "Records in the audit log"))
        auditPending = registry.makeGauge(descriptor: descriptor("audit_pending", "records", "Audit records waiting for the next batch"))
        auditWriteFailures = registry.makeCounter(descriptor: descriptor("audit_write_failures", "total", "Failed audit batch writes (retried)"))
        auditDropped = registry.makeCounter(descriptor: descriptor("audit_dropped", "total",
                                                                   "Audit events dropped while the queue was full (data requests were refused then)"))
        replicationLag = registry.makeGauge(descriptor: descriptor("replication_lag", "seconds", "Age of the oldest snapshot not yet at the hub"))
        replicationFailures = registry.makeCounter(descriptor: descriptor("replication_failures", "total", "Failed pushes to the hub (retried)"))
        replicationPushed = registry.makeCounter(descriptor: descriptor("replication_pushed", "total", "Snapshots the hub accepted"))
        replicationHalted = registry.makeGauge(descriptor: descriptor("replication_halted", "datasets",
                                                                      "Datasets whose pushes the hub refused for good (not retried until restart)"))
        frameCacheCapacity = registry.makeGauge(descriptor: descriptor("frame_cache_capacity", "bytes",
                                                                       "Memory the frame cache may take (read_cache_bytes)"))
        frameCacheBytes = registry.makeGauge(descriptor: descriptor("frame_cache", "bytes",
                                                                    "Memory the frame cache's frames take (buffers as allocated, and bookkeeping)"))
        frameCacheFrames = registry.makeGauge(descriptor: descriptor("frame_cache", "frames", "Decoded frames in the frame cache"))
        frameCacheHits = registry.makeCounter(descriptor: descriptor("frame_cache_hits", "total", "Frames served from the frame cache"))
        frameCacheMisses = registry.makeCounter(descriptor: descriptor("frame_cache_misses", "total",
                                                                       "Frames looked for in the frame cache and decoded instead"))
        frameCacheEvictions = registry.makeCounter(descriptor: descriptor("frame_cache_evictions", "total",
                                                                          "Frames the frame cache let go to make room"))
    }

    /// Brings the frame-cache metrics up to `cache`'s figures (at each scrape).
    func observe(_ cache: FrameCache) {
        // Read and reported under one lock: two scrapes at once must not both report a difference.
        frameCacheReported.withLock { reported in
            let now = cache.statistics
            frameCacheCapacity.set(Double(cache.capacity))
            frameCacheBytes.set(Double(now.bytes))
            frameCacheFrames.set(Double(now.frames))
            frameCacheHits.increment(by: Int64(clamping: now.hits > reported.hits ? now.hits - reported.hits : 0))
            frameCacheMisses.increment(by: Int64(clamping: now.misses > reported.misses ? now.misses - reported.misses : 0))
            frameCacheEvictions.increment(by: Int64(clamping: now.evictions > reported.evictions ? now.evictions - reported.evictions : 0))
            reported = now
        }
    }

    func requestFinished(route: String, method: String, status: Int, duration: Duration) {
        let key = RequestSeries(route: route, method: method, status: status)
        let (counter, histogram) = requestSeries.withLock { series in
            if let known = series[key] { return known }
            let made = (registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "cairn", metricName: "http_requests", unitName: "total",
                                                                               helpText: "HTTP requests by route, method and status"),
                                             labels: [("route", route), ("method", method), ("status", String(status))]),
                        registry.makeDurationHistogram(descriptor: MetricNameDescriptor(namespace: "cairn", metricName: "http_request_duration",
                                                                                        unitName: "seconds", helpText: "Time to response head"),
                                                       labels: [("route", route)], buckets: Self.latencyBuckets))
            series[key] = made
            return made
        }
        counter.increment()
        histogram.record(duration)
    }

    /// The request metrics' series, made once each: looking them up in the registry by name and
    /// labels cost a few percent of a cached range read.
    private struct RequestSeries: Hashable {
        var route: String
        var method: String
        var status: Int
    }
    private let requestSeries = Mutex<[RequestSeries: (Counter, DurationHistogram)]>([:])

    /// The server's connections: open now, refused by reason, closed for leaving output unread.
    var connections: ConnectionObserver {
        let open = registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "cairn", metricName: "http_connections",
                                                                       helpText: "HTTP connections open"))
        let stalled = registry.makeCounter(descriptor: MetricNameDescriptor(
            namespace: "cairn", metricName: "http_connections_stalled", unitName: "total",
            helpText: "Connections closed because the client left written bytes unread for write_stall_seconds"))
        let registry = registry
        return ConnectionObserver(opened: { open.set(Double($0)) }, refused: { reason in
            registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "cairn", metricName: "http_connections_refused", unitName: "total",
                                                                  helpText: "Connections closed on accept: the server or the client had none left"),
                                 labels: [("reason", reason)]).increment()
        }, stalled: { stalled.increment() })
    }

    func ingested(outcome: String) {
        registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "cairn", metricName: "uploads", unitName: "total",
                                                              helpText: "Uploads by outcome"),
                             labels: [("outcome", outcome)]).increment()
    }

    public func exposition() -> [UInt8] { registry.emitToBuffer() }
}
