import CairnAudit
import CairnHTTP
import CairnIngest
import CairnStore
import Foundation
import HTTPTypes
import Hummingbird

extension NodeAPI {
    func addUploadRoute(to router: Router<NodeRequestContext>) {
        router.post("/v1/datasets/:id/instances") { request, context in try await upload(request, context: context) }
    }

    /// One file per request, spooled to `tmp/`, then the same gate and write path as `cairn ingest`.
    /// Nothing is stored unless the whole body arrived: a cut-off upload only leaves a spool file,
    /// which is removed at once (and by recovery, were the process killed).
    func upload(_ request: Request, context: NodeRequestContext) async throws -> Response {
        let id = context.parameters.get("id") ?? ""
        let grant = try await authorize(request, context: context, scope: .ingest, dataset: id, action: "upload")
        func event(_ status: Int, bytes: Int64? = nil, digest: String? = nil, detail: String? = nil) -> AuditEvent {
            AuditEvent(actor: grant.subject, action: "upload", dataset: id, digest: digest, bytes: bytes, status: status, detail: detail)
        }
        guard try store.datasetExists(id) else {
            audit.record(event(404, detail: "no such dataset"))
            throw APIError.notFound("no dataset \(id)")
        }
        let limit = config.maxUploadBytes
        if let declared = request.headers[.contentLength].flatMap(UInt64.init), declared > limit {
            audit.record(event(413, bytes: Int64(declared), detail: "declared size over the limit"))
            metrics.ingested(outcome: "too_large")
            throw APIError(.contentTooLarge, "too_large", "\(declared) bytes is over the upload limit of \(limit)")
        }
        if let free = store.freeBytes, free < config.diskLowWaterBytes {
            audit.record(event(507, detail: "disk below low-water mark"))
            metrics.ingested(outcome: "disk_full")
            throw APIError(.insufficientStorage, "disk_full", "only \(free) bytes free, below the low-water mark")
        }
        let spool = try store.makeSpool()
        do {
            for try await chunk in request.body {
                guard spool.length + UInt64(chunk.readableBytes) <= limit else {
                    throw APIError(.contentTooLarge, "too_large", "body exceeds the upload limit of \(limit) bytes")
                }
                try chunk.withUnsafeReadableBytes { try spool.append($0) }
            }
        } catch {
            let failure = APIError.from(error)
            let cutOff = !(error is APIError) && !(error is StoreError)
            audit.record(event(cutOff ? 400 : Int(failure.status.code), bytes: Int64(spool.length),
                               detail: cutOff ? "upload cut off: \(error)" : failure.detail))
            metrics.ingested(outcome: cutOff ? "cut_off" : failure.error)
            if cutOff { throw APIError.badRequest("upload did not complete: \(error)") }
            throw failure
        }
        let outcome: SingleIngestOutcome
        do {
            let store = store, name = request.uri.queryParameters.get("name")
            // Compressing a large file takes seconds: off the cooperative pool that serves reads.
            outcome = try await offload { try ingestFile(at: spool.path, into: store, dataset: id, name: name) }
        } catch {
            let failure = APIError.from(error)
            audit.record(event(Int(failure.status.code), bytes: Int64(spool.length), detail: failure.detail))
            metrics.ingested(outcome: failure.error)
            throw failure
        }
        switch outcome {
        case .refused(let reason):
            audit.record(event(422, bytes: Int64(spool.length), detail: "refused by the de-identification gate"))
            metrics.ingested(outcome: "refused")
            throw APIError(.unprocessableContent, "refused", "dataset \(id) refuses this file: it \(reason)")
        case .stored(let put, let isInstance):
            audit.record(event(201, bytes: Int64(put.blob.size), digest: put.blob.digest.description,
                               detail: put.deduplicated ? "already stored" : nil))
            metrics.ingested(outcome: put.deduplicated ? "deduplicated" : "stored")
            metrics.uploadBytes.increment(by: Int64(put.blob.size))
            return try NodeAPI.json(["digest": put.blob.digest.description, "size": put.blob.size, "dataset": id,
                                     "deduplicated": put.deduplicated, "instance": isInstance],
                                    status: .created, headers: [.location: "/v1/blobs/\(put.blob.digest)"])
        }
    }
}

/// Runs blocking work on a Dispatch worker thread and awaits it.
func offload<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
    }
}
