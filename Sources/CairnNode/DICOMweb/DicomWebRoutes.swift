import CairnAudit
import CairnAuth
import CairnDICOM
import CairnFoundation
import CairnHTTP
import CairnStore
import Crypto
import Foundation
import HTTPTypes
import Hummingbird

/// DICOMweb (PS3.18) per dataset: each dataset is a service root at `/dicomweb/{dataset}`, scoped
/// by the same tokens as the blob API. A study, series or instance outside the dataset is a 404.
extension NodeAPI {
    func addDicomWebRoutes(to router: Router<NodeRequestContext>) {
        let root = "/dicomweb/:dataset"
        let study = root + "/studies/:study", series = study + "/series/:series", instance = series + "/instances/:sop"
        router.get(RouterPath(root + "/studies")) { request, context in try await search(.study, request, context) }
        router.get(RouterPath(root + "/series")) { request, context in try await search(.series, request, context) }
        router.get(RouterPath(root + "/instances")) { request, context in try await search(.instance, request, context) }
        router.get(RouterPath(study + "/series")) { request, context in try await search(.series, request, context) }
        router.get(RouterPath(study + "/instances")) { request, context in try await search(.instance, request, context) }
        router.get(RouterPath(series + "/instances")) { request, context in try await search(.instance, request, context) }
        for path in [study, series, instance] {
            router.get(RouterPath(path)) { request, context in try await retrieve(request, context) }
            router.get(RouterPath(path + "/metadata")) { request, context in try await metadata(request, context) }
            router.get(RouterPath(path + "/rendered")) { request, context in try await notProvided(request, context, what: "rendered") }
            router.get(RouterPath(path + "/thumbnail")) { request, context in try await notProvided(request, context, what: "thumbnail") }
        }
        router.get(RouterPath(instance + "/frames/:frames")) { request, context in try await frames(request, context) }
        router.get(RouterPath(instance + "/frames/:frames/rendered")) { request, context in
            try await notProvided(request, context, what: "rendered")
        }
        router.get(RouterPath(instance + "/bulkdata/:blob/:value")) { request, context in try await bulkdata(request, context) }
        router.post(RouterPath(root + "/studies")) { request, context in try await store(request, context) }
        router.post(RouterPath(study)) { request, context in try await store(request, context) }
    }

    static let warningField = HTTPField.Name("Warning")!

    /// When to check that the dataset in the path exists: at once, or (for a route that looks up
    /// instances anyway, and finds none in a dataset that does not exist) only to explain a miss.
    enum DatasetLookup { case first, whenNothingFound }

    /// The caller's grant for the dataset in the path, which must exist.
    func dicomWebAccess(_ request: Request, _ context: NodeRequestContext, scope: Scope = .read,
                        action: String, lookup: DatasetLookup = .first) async throws -> (grant: AccessGrant, dataset: String) {
        let dataset = context.parameters.get("dataset") ?? ""
        let grant = try await authorize(request, context: context, scope: scope, dataset: dataset, action: action)
        if lookup == .first { try requireDataset(dataset, grant: grant, action: action, context: context) }
        return (grant, dataset)
    }

    func requireDataset(_ dataset: String, grant: AccessGrant, action: String, context: NodeRequestContext) throws {
        guard try store.datasetExists(dataset) else {
            deny(actor: grant.subject, action: action, dataset: dataset, status: 404, detail: "no such dataset", context: context)
            throw APIError.notFound("no dataset \(dataset)")
        }
    }

    /// The UIDs the path names, each checked, so a malformed one is a 400 rather than a miss.
    func pathUIDs(_ context: NodeRequestContext) throws -> (study: String?, series: String?, sop: String?) {
        func uid(_ name: String, _ label: String) throws -> String? {
            try context.parameters.get(name).map { text throws(APIError) in try QidoQuery.uid(text, name: label) }
        }
        return (try uid("study", "study UID"), try uid("series", "series UID"), try uid("sop", "SOP instance UID"))
    }

    /// The service root as clients reach it, for RetrieveURL and BulkDataURI values: `public_url`
    /// when configured (behind a proxy), else the Host the client sent (if it is a plain
    /// host[:port]) with the port the connection arrived on when the Host names none (some
    /// clients, dicomweb-client among them, send the host name alone).
    func serviceRoot(_ request: Request, _ context: NodeRequestContext, dataset: String) -> String {
        if let publicURL = config.publicURL { return "\(publicURL)/dicomweb/\(dataset)" }
        let scheme = config.tlsCertificate == nil ? "http" : "https"
        var host = config.listen
        if let authority = request.head.authority, !authority.isEmpty, authority.utf8.allSatisfy({ byte in
            (byte >= 48 && byte <= 58) || (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122) || byte == 45 || byte == 46
                || byte == 91 || byte == 93
        }) {
            let hasPort = authority.hasPrefix("[") ? authority.contains("]:") : authority.contains(":")
            host = hasPort ? authority : authority + (context.localPort.map { ":\($0)" } ?? "")
        }
        return "\(scheme)://\(host)/dicomweb/\(dataset)"
    }

    // MARK: QIDO-RS

    func search(_ level: QueryLevel, _ request: Request, _ context: NodeRequestContext) async throws -> Response {
        let action = "dicomweb.search"
        let (grant, dataset) = try await dicomWebAccess(request, context, action: action)
        func refuse(_ error: APIError) -> APIError {
            audit.record(AuditEvent(actor: grant.subject, action: action, dataset: dataset, status: Int(error.status.code),
                                    detail: error.detail))
            return error
        }
        guard MediaRange.acceptsDicomJSON(request.headers[.accept]) else {
            throw refuse(APIError(.notAcceptable, "not_acceptable",
                                  "search results are application/dicom+json; XML and multipart responses are not provided"))
        }
        let study: String?, series: String?
        do { (study, series, _) = try pathUIDs(context) } catch let error as APIError { throw refuse(error) }
        let items = request.uri.queryParameters.map { (name: String($0.key), value: String($0.value)) }
        let qido: QidoQuery
        do { qido = try QidoQuery(level: level, items: items, study: study, series: series) } catch { throw refuse(error) }
        let store = store, root = serviceRoot(request, context, dataset: dataset)
        let body: (text: String, count: Int, more: Bool, olderRows: Bool)
        do {
            body = try await offload {
                let olderRows = try qido.matchesNewerKeys && store.hasInstancesIndexedBeforeDicomWeb(in: dataset)
                if level == .instance {
                    let (found, more) = try store.searchInstances(qido.query, in: dataset)
                    return ("[" + found.map { QidoResponse.instance($0.instance, root: root) }.joined(separator: ",") + "]",
                            found.count, more, olderRows)
                }
                let (found, more) = try store.searchGroups(qido.query, in: dataset)
                return ("[" + found.map { level == .study ? QidoResponse.study($0, root: root) : QidoResponse.series($0, root: root) }
                    .joined(separator: ",") + "]", found.count, more, olderRows)
            }
        } catch {
            throw refuse(APIError.from(error))
        }
        var headers: HTTPFields = [.contentType: "application/dicom+json"]
        var warnings = qido.warnings
        if body.more {
            warnings.append("299 cairn: There are additional results that can be requested (offset=\(qido.query.offset + body.count))")
        }
        if body.olderRows { warnings.append(QidoQuery.olderRowsWarning) }
        for warning in warnings { headers.append(HTTPField(name: Self.warningField, value: warning)) }
        audit.record(AuditEvent(actor: grant.subject, action: action, dataset: dataset, bytes: Int64(body.text.utf8.count),
                                status: 200, detail: "\(level.rawValue) level, \(body.count) results"))
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body.text)))
    }

    // MARK: shared by retrieve, metadata, frames and bulk data

    /// The instances a WADO-RS path names (a study, a series or one instance); 404 when none.
    func namedInstances(_ context: NodeRequestContext, dataset: String, grant: AccessGrant,
                        action: String) throws -> [StoredInstance] {
        let uids: (study: String?, series: String?, sop: String?)
        do { uids = try pathUIDs(context) } catch {
            deny(actor: grant.subject, action: action, dataset: dataset, status: 400, detail: "\(error)", context: context)
            throw error
        }
        let (study, series, sop) = uids
        guard let study else { throw APIError.badRequest("no study UID in the path") }
        let found: [StoredInstance]
        do { found = try store.storedInstances(in: dataset, study: study, series: series, sop: sop) } catch {
            let failure = APIError.from(error)
            audit.record(AuditEvent(actor: grant.subject, action: action, dataset: dataset, status: Int(failure.status.code),
                                    detail: failure.detail))
            throw failure
        }
        guard !found.isEmpty else {
            try requireDataset(dataset, grant: grant, action: action, context: context)
            let what = sop.map { "instance \($0)" } ?? series.map { "series \($0)" } ?? "study \(study)"
            deny(actor: grant.subject, action: action, dataset: dataset, status: 404, detail: "no \(what)", context: context)
            throw APIError.notFound("dataset \(dataset) has no \(what)" + (sop != nil || series != nil ? " in study \(study)" : ""))
        }
        if let damaged = found.first(where: { $0.blob.state != .ok }) {
            let detail = "instance \(damaged.instance.sopInstanceUID ?? "-") (\(damaged.blob.digest)) is \(damaged.blob.state.rawValue); `cairn verify` found it"
            audit.record(AuditEvent(actor: grant.subject, action: action, dataset: dataset, digest: damaged.blob.digest.description,
                                    status: 500, detail: detail))
            throw APIError(.internalServerError, "damaged", detail)
        }
        return found
    }

    /// The one stored file a SOP Instance UID names; 409 when the dataset holds several files with
    /// that UID (the same instance in other encodings, say), whose frames would differ.
    func namedInstance(_ context: NodeRequestContext, dataset: String, grant: AccessGrant,
                       action: String) throws -> StoredInstance {
        let found = try namedInstances(context, dataset: dataset, grant: grant, action: action)
        guard found.count == 1, let instance = found.first else {
            let detail = "SOP instance UID \(found[0].instance.sopInstanceUID ?? "") names \(found.count) different stored files in this dataset; "
                + "retrieve the instance (or its metadata, whose BulkDataURIs name the file)"
            audit.record(AuditEvent(actor: grant.subject, action: action, dataset: dataset, status: 409, detail: detail))
            throw APIError(.conflict, "ambiguous_instance", detail)
        }
        return instance
    }

    /// A strong validator for what a request returns: the digests it is made of, and the kind.
    static func entityTag(_ kind: String, _ instances: [StoredInstance]) -> String {
        var hasher = SHA256()
        hasher.update(data: Data(kind.utf8))
        for instance in instances { hasher.update(data: Data(instance.blob.digest.hex.utf8)) }
        return "\"" + Hex.encode(hasher.finalize().prefix(16)) + "\""
    }

    func notProvided(_ request: Request, _ context: NodeRequestContext, what: String) async throws -> Response {
        let (grant, dataset) = try await dicomWebAccess(request, context, action: "dicomweb.\(what)")
        let detail = "\(what) resources are not provided: Cairn serves stored bytes and does not render images"
        audit.record(AuditEvent(actor: grant.subject, action: "dicomweb.\(what)", dataset: dataset, status: 501, detail: detail))
        throw APIError(.notImplemented, "not_implemented", detail)
    }
}

/// QIDO-RS result objects: the attributes the index stored at ingest, plus what the query computes
/// (counts, ModalitiesInStudy, RetrieveURL, InstanceAvailability).
enum QidoResponse {
    static let availability = DicomJSON.member(DicomTag(0x0008, 0x0056), vr: .CS, strings: ["ONLINE"])

    static func study(_ group: FoundGroup, root: String) -> String {
        object([studyMembers(group.example),
                DicomJSON.member(DicomTag(0x0008, 0x0061), vr: .CS, strings: group.modalities),
                DicomJSON.member(DicomTag(0x0008, 0x1190), vr: .UR, strings: ["\(root)/studies/\(group.studyUID)"]),
                DicomJSON.member(DicomTag(0x0020, 0x1206), vr: .IS, numbers: [group.seriesCount]),
                DicomJSON.member(DicomTag(0x0020, 0x1208), vr: .IS, numbers: [group.instanceCount]),
                availability])
    }

    static func series(_ group: FoundGroup, root: String) -> String {
        let url = "\(root)/studies/\(group.studyUID)/series/\(group.seriesUID ?? "")"
        return object([studyMembers(group.example), seriesMembers(group.example),
                       DicomJSON.member(DicomTag(0x0008, 0x1190), vr: .UR, strings: [url]),
                       DicomJSON.member(DicomTag(0x0020, 0x1209), vr: .IS, numbers: [group.instanceCount]),
                       availability])
    }

    static func instance(_ record: InstanceRecord, root: String) -> String {
        let url = "\(root)/studies/\(record.studyUID ?? "")/series/\(record.seriesUID ?? "")/instances/\(record.sopInstanceUID ?? "")"
        return object([studyMembers(record), seriesMembers(record), instanceMembers(record),
                       DicomJSON.member(DicomTag(0x0008, 0x1190), vr: .UR, strings: [url]), availability])
    }

    static func object(_ members: [String]) -> String { "{" + members.filter { !$0.isEmpty }.joined(separator: ",") + "}" }

    // Rows indexed before the attributes were kept (index v9) answer from their columns.

    static func studyMembers(_ r: InstanceRecord) -> String {
        // Empty: a file `cairn reindex` could not read again; its older columns still answer.
        if let stored = r.studyAttributes, !stored.isEmpty { return stored }
        var out: [String] = []
        if let v = r.studyDate { out.append(DicomJSON.member(DicomTag(0x0008, 0x0020), vr: .DA, strings: [v])) }
        if let v = r.subject { out.append(DicomJSON.member(DicomTag(0x0010, 0x0020), vr: .LO, strings: [v])) }
        if let v = r.sex { out.append(DicomJSON.member(DicomTag(0x0010, 0x0040), vr: .CS, strings: [v])) }
        if let v = r.studyUID { out.append(DicomJSON.member(DicomTag(0x0020, 0x000D), vr: .UI, strings: [v])) }
        return out.joined(separator: ",")
    }

    static func seriesMembers(_ r: InstanceRecord) -> String {
        if let stored = r.seriesAttributes { return stored }
        var out: [String] = []
        if let v = r.modality { out.append(DicomJSON.member(DicomTag(0x0008, 0x0060), vr: .CS, strings: [v])) }
        if let v = r.bodyPart { out.append(DicomJSON.member(DicomTag(0x0018, 0x0015), vr: .CS, strings: [v])) }
        if let v = r.seriesUID { out.append(DicomJSON.member(DicomTag(0x0020, 0x000E), vr: .UI, strings: [v])) }
        return out.joined(separator: ",")
    }

    static func instanceMembers(_ r: InstanceRecord) -> String {
        if let stored = r.instanceAttributes { return stored }
        var out: [String] = []
        if let v = r.sopClassUID { out.append(DicomJSON.member(DicomTag(0x0008, 0x0016), vr: .UI, strings: [v])) }
        if let v = r.sopInstanceUID { out.append(DicomJSON.member(DicomTag(0x0008, 0x0018), vr: .UI, strings: [v])) }
        if let v = r.rows { out.append(DicomJSON.member(DicomTag(0x0028, 0x0010), vr: .US, numbers: [v])) }
        if let v = r.columns { out.append(DicomJSON.member(DicomTag(0x0028, 0x0011), vr: .US, numbers: [v])) }
        return out.joined(separator: ",")
    }
}
