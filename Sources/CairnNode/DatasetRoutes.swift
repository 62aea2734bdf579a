import CairnAudit
import CairnHTTP
import CairnStore
import Foundation
import HTTPTypes
import Hummingbird

extension NodeAPI {
    func addDatasetRoutes(to router: Router<NodeRequestContext>) {
        router.get("/v1/datasets") { request, context in
            let grant = try await authorize(request, context: context, scope: .read, action: "list")
            let visible = try store.datasets().filter { grant.covers(dataset: $0.id) }
            audit.record(AuditEvent(actor: grant.subject, action: "list", status: 200, detail: "\(visible.count) datasets"))
            return try NodeAPI.json(["datasets": visible.map(Self.datasetJSON)])
        }
        router.get("/v1/datasets/:id") { request, context in
            let id = context.parameters.get("id") ?? ""
            let grant = try await authorize(request, context: context, scope: .read, dataset: id, action: "show")
            guard let summary = try store.summary(of: id) else { throw APIError.notFound("no dataset \(id)") }
            audit.record(AuditEvent(actor: grant.subject, action: "show", dataset: id, status: 200))
            return try NodeAPI.json(Self.summaryJSON(summary))
        }
        router.get("/v1/datasets/:id/entries") { request, context in try await entries(request, context: context) }
        router.get("/v1/datasets/:id/snapshots/latest") { request, context -> Response in
            let id = context.parameters.get("id") ?? ""
            let grant = try await authorize(request, context: context, scope: .read, dataset: id, action: "snapshot")
            guard let snapshot = try store.latestSnapshot(of: id) else {
                throw APIError.notFound("dataset \(id) has no published snapshot (`cairn dataset publish \(id)`)")
            }
            let etag = "\"\(snapshot.digest)\""
            if let ifNoneMatch = request.headers[.ifNoneMatch], Self.matches(ifNoneMatch, etag: etag) {
                audit.record(AuditEvent(actor: grant.subject, action: "snapshot", dataset: id, digest: snapshot.digest,
                                        bytes: 0, status: 304))
                return Response(status: .notModified, headers: [.eTag: etag])
            }
            audit.record(AuditEvent(actor: grant.subject, action: "snapshot", dataset: id, digest: snapshot.digest,
                                    bytes: Int64(snapshot.document.count), status: 200))
            return Response(status: .ok, headers: [.contentType: "application/json", .eTag: etag],
                            body: .init(byteBuffer: ByteBuffer(bytes: snapshot.document)))
        }
    }

    /// NDJSON, one entry a line in digest order, read from the index a page at a time while the
    /// client consumes it; `?after=DIGEST` resumes after that entry, `?limit=N` stops after N.
    func entries(_ request: Request, context: NodeRequestContext) async throws -> Response {
        let id = context.parameters.get("id") ?? ""
        let grant = try await authorize(request, context: context, scope: .read, dataset: id, action: "entries")
        guard try store.datasetExists(id) else { throw APIError.notFound("no dataset \(id)") }
        let parameters = request.uri.queryParameters
        let query = try EntriesQuery(after: parameters.get("after").map { String($0) }, limit: parameters.get("limit").map { String($0) })
        let store = store, audit = audit, startAfter = query.after, maximum = query.limit
        return Response(status: .ok, headers: [.contentType: "application/x-ndjson"], body: ResponseBody { writer in
            var cursor = startAfter
            var sent = 0, bytes = 0
            // Recorded on every path: a client that hangs up midway is audited with what it got.
            func record(_ detail: String) {
                audit.record(AuditEvent(actor: grant.subject, action: "entries", dataset: id, range: startAfter.map { "after \($0)" },
                                        bytes: Int64(bytes), status: 200, detail: detail))
            }
            do {
                while sent < maximum {
                    let after = cursor, limit = min(1000, maximum - sent)
                    let page = try await offEventLoop { try store.list(dataset: id, after: after, limit: limit) }
                    if page.isEmpty { break }
                    var buffer = ByteBuffer()
                    for entry in page {
                        buffer.writeBytes(try JSONSerialization.data(withJSONObject: Self.entryJSON(entry), options: [.sortedKeys]))
                        buffer.writeInteger(UInt8(ascii: "\n"))
                    }
                    let size = buffer.readableBytes
                    try await writer.write(buffer)
                    bytes += size
                    sent += page.count
                    cursor = page.last?.record.digest
                }
                try await writer.finish(nil)
            } catch {
                record("cut short after \(sent) entries: \(error)")
                throw error
            }
            record("\(sent) entries")
        })
    }

    static func datasetJSON(_ info: DatasetInfo) -> [String: Any] {
        var out: [String: Any] = ["id": info.id, "deid_policy": info.deidPolicy.rawValue,
                                  "created_at": ISO8601DateFormatter().string(from: info.createdAt)]
        if let title = info.title { out["title"] = title }
        if let description = info.description { out["description"] = description }
        if let cancerType = info.cancerType { out["cancer_type"] = cancerType }
        return out
    }

    static func summaryJSON(_ summary: DatasetSummary) -> [String: Any] {
        var out = datasetJSON(summary.info)
        out["counts"] = ["subjects": summary.subjects, "studies": summary.studies, "series": summary.series,
                         "instances": summary.instances, "files": summary.files, "bytes": summary.bytes,
                         "stored_bytes": summary.storedBytes, "erasures": summary.erasures]
        out["by_modality"] = summary.byModality
        out["by_body_part"] = summary.byBodyPart
        out["by_manufacturer"] = summary.byManufacturer
        out["by_sex"] = summary.bySex
        return out
    }

    /// One entries line: the blob and the attributes indexed with it (no free text is indexed).
    static func entryJSON(_ entry: ListedBlob) -> [String: Any] {
        var out: [String: Any] = ["digest": entry.record.digest.description, "size": entry.record.size]
        if let name = entry.name { out["name"] = name }
        guard let instance = entry.instance else { return out }
        let attributes: [(String, Any?)] = [
            ("subject", instance.subject), ("study_uid", instance.studyUID), ("series_uid", instance.seriesUID),
            ("sop_instance_uid", instance.sopInstanceUID), ("sop_class_uid", instance.sopClassUID),
            ("modality", instance.modality), ("body_part", instance.bodyPart), ("manufacturer", instance.manufacturer),
            ("sex", instance.sex), ("study_date", instance.studyDate), ("rows", instance.rows), ("columns", instance.columns),
            ("frames", instance.frames), ("transfer_syntax", instance.transferSyntax),
            ("pixel_data_offset", instance.pixelDataOffset),
            ("frame_offsets", instance.frameOffsets.isEmpty ? nil : instance.frameOffsets),
        ]
        for (key, value) in attributes { if let value { out[key] = value } }
        return out
    }
}

/// `?after=DIGEST&limit=N` of the entries route: a digest to resume after, and a positive count
/// (no limit when absent). Anything else is a 400 naming the parameter.
public struct EntriesQuery: Equatable, Sendable {
    public var after: BlobDigest?
    public var limit = Int.max

    public init(after: String?, limit: String?) throws(APIError) {
        if let after {
            guard let digest = BlobDigest(parsing: after) else { throw .badRequest("after='\(after.prefix(100))' is not a digest") }
            self.after = digest
        }
        if let limit {
            guard let value = Int(limit), value > 0 else { throw .badRequest("limit must be a positive integer") }
            self.limit = value
        }
    }
}
