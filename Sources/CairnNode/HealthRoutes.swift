import CairnStore
import HTTPTypes
import Hummingbird

extension NodeAPI {
    /// Health, readiness and metrics need no token: they reveal no data.
    func addHealthRoutes(to router: Router<NodeRequestContext>) {
        router.get("/healthz") { _, _ in try NodeAPI.json(["status": "ok"]) }
        router.get("/readyz") { _, _ in try readiness() }
        router.get("/metrics") { _, _ in
            if let free = store.freeBytes { metrics.diskFree.set(Double(free)) }
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(bytes: metrics.exposition())))
        }
    }

    /// Ready when the index answers, `tmp/` is writable, free space is above the low-water mark and
    /// the hub has not refused a push for good.
    func readiness() throws -> Response {
        var problems: [String] = []
        do { try store.checkUsable() } catch { problems.append("store not usable: \(error)") }
        if let problem = audit.problem { problems.append(problem) }
        do {
            for item in try store.outbox().halted {
                problems.append("replication of \(item.dataset) halted: \(item.halted ?? "")")
            }
        } catch {
            problems.append("outbox not readable: \(error)")
        }
        let free = store.freeBytes ?? 0
        if free < config.diskLowWaterBytes {
            problems.append("disk free \(free) bytes is below the low-water mark of \(config.diskLowWaterBytes)")
        }
        if problems.isEmpty { return try NodeAPI.json(["status": "ready", "disk_free_bytes": free]) }
        return try NodeAPI.json(["status": "not_ready", "problems": problems, "disk_free_bytes": free],
                                status: .serviceUnavailable)
    }
}
