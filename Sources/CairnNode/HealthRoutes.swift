import CairnHTTP
import CairnStore
import HTTPTypes
import Hummingbird

extension NodeAPI {
    /// Health and readiness need no token, and say no more than ready or not to a caller without
    /// one; metrics and the reasons a node is not ready need a token with the `monitor` scope (or
    /// admin). They never depend on the audit log being writable: a node that cannot audit must
    /// still be seen to be failing.
    func addHealthRoutes(to router: Router<NodeRequestContext>) {
        router.get("/healthz") { _, _ in try NodeAPI.json(["status": "ok"]) }
        router.get("/readyz") { request, _ in try await readiness(detailed: await monitors(request)) }
        router.get("/metrics") { request, context in
            guard await monitors(request) else {
                deny(actor: "-", action: "metrics", status: 401, detail: "no monitor token", context: context)
                throw APIError.unauthorized("/metrics needs a token with the monitor scope (cairn token issue --scope monitor)")
            }
            if let free = store.freeBytes { metrics.diskFree.set(Double(free)) }
            metrics.observe(store.frameCache)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(bytes: metrics.exposition())))
        }
    }

    /// Whether the request carries a valid token with the monitor scope.
    func monitors(_ request: Request) async -> Bool {
        guard request.headers[.authorization] != nil,
              let grant = try? await verifier.verify(authorization: request.headers[.authorization]) else { return false }
        return grant.allows(.monitor)
    }

    /// Ready when the index answers, `tmp/` is writable, free space is above the low-water mark and
    /// the hub has not refused a push for good.
    func readiness(detailed: Bool) throws -> Response {
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
        // Dataset ids and the hub's words stay with those who monitor the node.
        guard detailed else {
            return try NodeAPI.json(["status": problems.isEmpty ? "ready" : "not_ready"],
                                    status: problems.isEmpty ? .ok : .serviceUnavailable)
        }
        if problems.isEmpty { return try NodeAPI.json(["status": "ready", "disk_free_bytes": free]) }
        return try NodeAPI.json(["status": "not_ready", "problems": problems, "disk_free_bytes": free],
                                status: .serviceUnavailable)
    }
}
