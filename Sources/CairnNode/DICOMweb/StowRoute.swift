import CairnAudit
import CairnAuth
import CairnDICOM
import CairnHTTP
import CairnIngest
import CairnStore
import Foundation
import HTTPTypes
import Hummingbird

/// Why STOW-RS refuses one part: a PS3.4 failure reason and the reason in words.
struct StowRefusal: Error {
    let failure: UInt16
    let note: String
    init(_ failure: UInt16, _ note: String) {
        self.failure = failure
        self.note = note
    }
}

/// What happened to one part of a STOW-RS request.
struct StowOutcome {
    var sopClass: String?
    var sopInstance: String?
    /// PS3.18 Table 10.5.3-1 / PS3.4 failure reason; nil when stored.
    var failure: UInt16?
    var note: String?
    var studyUID: String?
    var seriesUID: String?
}

extension NodeAPI {
    /// STOW-RS (`ingest` scope): a `multipart/related; type="application/dicom"` body, read as it
    /// arrives; each part is spooled to `tmp/` and, once complete, goes through the same gate,
    /// dedup and write path as `cairn ingest`. Parts complete before a body is cut off stay stored
    /// (each is a whole instance, and storing it again is harmless); the part cut off is dropped.
    /// 200 when all were stored, 202 when some were, 409 when none; the body says which and why.
    func store(_ request: Request, _ context: NodeRequestContext) async throws -> Response {
        let action = "dicomweb.store"
        let (grant, dataset) = try await dicomWebAccess(request, context, scope: .ingest, action: action)
        func refuse(_ error: APIError) -> APIError {
            audit.record(AuditEvent(actor: grant.subject, action: action, dataset: dataset, status: Int(error.status.code),
                                    detail: error.detail))
            return error
        }
        let targetStudy: String?
        do { targetStudy = try pathUIDs(context).study } catch let error as APIError { throw refuse(error) }
        guard let contentType = request.headers[.contentType].flatMap(MediaRange.parse), contentType.mediaType == "multipart/related",
              let boundary = contentType.parameters["boundary"], !boundary.isEmpty, boundary.utf8.count <= 200 else {
            throw refuse(APIError(.unsupportedMediaType, "unsupported_media_type",
                                  "STOW-RS takes multipart/related; type=\"application/dicom\" with a boundary"))
        }
        if let type = contentType.parameters["type"]?.lowercased(), type != "application/dicom" {
            throw refuse(APIError(.unsupportedMediaType, "unsupported_media_type",
                                  "parts of type \(type) are not stored: send application/dicom instances"))
        }
        if let free = store.freeBytes, free < config.diskLowWaterBytes {
            throw refuse(APIError(.insufficientStorage, "disk_full", "only \(free) bytes free, below the low-water mark"))
        }
        let limit = config.maxUploadBytes
        if let declared = request.headers[.contentLength].flatMap(UInt64.init), declared > limit {
            throw refuse(APIError(.contentTooLarge, "too_large", "\(declared) bytes is over the upload limit of \(limit)"))
        }
        var reader = MultipartReader(boundary: boundary)
        var outcomes: [StowOutcome] = []
        var spool: SpoolFile?
        var partType: String?
        var complete: [(spool: SpoolFile, type: String?)] = []
        var parts = 0
        var received: UInt64 = 0
        do {
            for try await chunk in request.body {
                received += UInt64(chunk.readableBytes)
                guard received <= limit else {
                    throw APIError(.contentTooLarge, "too_large", "body exceeds the upload limit of \(limit) bytes")
                }
                try chunk.withUnsafeReadableBytes { bytes in
                    try reader.feed(bytes) { event in
                        switch event {
                        case .partStart(let headers):
                            parts += 1
                            guard parts <= Self.maxStowParts else {
                                throw APIError(.contentTooLarge, "too_many_parts",
                                               "more than \(Self.maxStowParts) instances in one request; send them in several")
                            }
                            partType = headers["content-type"]
                            spool = try store.makeSpool()
                        case .body(let piece):
                            try spool?.append(piece)
                        case .partEnd:
                            if let finished = spool { complete.append((finished, partType)) }
                            spool = nil
                        }
                    }
                }
                for part in complete { outcomes.append(await storePart(part.spool, type: part.type, dataset: dataset, targetStudy: targetStudy)) }
                complete.removeAll()
            }
            guard reader.finished else { throw APIError.badRequest("the multipart body ended before its closing boundary") }
        } catch {
            // Parts that arrived whole before the failure, in the same piece of the body, are kept too.
            for part in complete { outcomes.append(await storePart(part.spool, type: part.type, dataset: dataset, targetStudy: targetStudy)) }
            let failure = error as? APIError ?? APIError.from(error)
            let cutOff = !(error is APIError) && !(error is StoreError)
            let stored = outcomes.filter { $0.failure == nil }.count
            let detail = (cutOff ? "body cut off: \(error)" : failure.detail) + "; \(stored) complete instances were stored before"
            audit.record(AuditEvent(actor: grant.subject, action: action, dataset: dataset, bytes: Int64(received),
                                    status: cutOff ? 400 : Int(failure.status.code), detail: detail))
            if cutOff || error is MultipartReader.Failure { throw APIError.badRequest("STOW body did not complete: \(error); \(stored) instances before it were stored") }
            throw APIError(failure.status, failure.error, detail)
        }
        guard !outcomes.isEmpty else {
            throw refuse(APIError.badRequest("the multipart body has no parts"))
        }
        let root = serviceRoot(request, context, dataset: dataset)
        let stored = outcomes.filter { $0.failure == nil }
        let status: HTTPResponse.Status = stored.count == outcomes.count ? .ok : stored.isEmpty ? .conflict : .accepted
        audit.record(AuditEvent(actor: grant.subject, action: action, dataset: dataset, bytes: Int64(received), status: Int(status.code),
                                detail: "\(stored.count) of \(outcomes.count) instances stored"))
        return Response(status: status, headers: [.contentType: "application/dicom+json"],
                        body: .init(byteBuffer: ByteBuffer(string: Self.storeResponse(outcomes, root: root, targetStudy: targetStudy))))
    }

    /// At most this many instances in one STOW-RS request: each holds a line of the response.
    static let maxStowParts = 10_000

    /// One complete part: its identity from ingest's own inspection, checked to belong where it was
    /// sent and not to be another file under a SOP Instance UID the dataset already holds, then
    /// the gate and the write path.
    func storePart(_ spool: SpoolFile, type: String?, dataset: String, targetStudy: String?) async -> StowOutcome {
        let store = store
        let outcome: StowOutcome = (try? await offload { () -> StowOutcome in
            var outcome = StowOutcome()
            if let type, let media = MediaRange.parse(type), media.mediaType != "application/dicom" {
                outcome.failure = 0xC000
                outcome.note = "a part of type \(media.mediaType) is not an application/dicom instance"
                return outcome
            }
            do {
                let result = try ingestFile(at: spool.path, into: store, dataset: dataset) { record in
                    guard let record else { throw StowRefusal(0xC000, "not a DICOM instance Cairn can parse") }
                    outcome.sopClass = record.sopClassUID
                    outcome.sopInstance = record.sopInstanceUID
                    outcome.studyUID = record.studyUID
                    outcome.seriesUID = record.seriesUID
                    guard let sop = record.sopInstanceUID, let study = record.studyUID else {
                        throw StowRefusal(0xC000, "no SOP Instance UID or Study Instance UID")
                    }
                    if let targetStudy, study != targetStudy {
                        throw StowRefusal(0xA900, "the instance belongs to study \(study), not \(targetStudy)")
                    }
                    // The same bytes again are a harmless repeat; other bytes under a held SOP Instance
                    // UID would leave two files for one instance (PS3.4 0x0111, duplicate SOP instance).
                    // Checked before the write, not in its transaction: two requests racing with
                    // different bytes under one new UID can both be stored (the README says so).
                    let held = try store.digests(ofSOPInstance: sop, in: dataset)
                    if !held.isEmpty, !held.contains(try BlobDigest.ofFile(at: spool.path)) {
                        throw StowRefusal(0x0111, "the dataset already holds a different file with this SOP Instance UID")
                    }
                }
                if case .refused(let reason) = result {
                    outcome.failure = 0x0124
                    outcome.note = "refused by the dataset's de-identification gate: it \(reason)"
                }
            } catch let refusal as StowRefusal {
                outcome.failure = refusal.failure
                outcome.note = refusal.note
            } catch StoreError.diskFull {
                outcome.failure = 0xA700
                outcome.note = "out of disk space"
            } catch {
                outcome.failure = 0x0110
                outcome.note = "processing failure: \(error)"
            }
            return outcome
        }) ?? StowOutcome(failure: 0x0110, note: "processing failure")
        metrics.ingested(outcome: outcome.failure == nil ? "stored" : "refused")
        return outcome
    }

    /// The Store Instances Response Module (PS3.18 10.5.3): RetrieveURL of the study, the stored
    /// instances (ReferencedSOPSequence) and the failed ones (FailedSOPSequence, with reasons).
    static func storeResponse(_ outcomes: [StowOutcome], root: String, targetStudy: String?) -> String {
        var members: [String] = []
        let studies = Set(outcomes.filter { $0.failure == nil }.compactMap(\.studyUID))
        if let study = targetStudy ?? (studies.count == 1 ? studies.first : nil) {
            members.append(DicomJSON.member(DicomTag(0x0008, 0x1190), vr: .UR, strings: ["\(root)/studies/\(study)"]))
        }
        func reference(_ outcome: StowOutcome) -> [String] {
            var item: [String] = []
            if let v = outcome.sopClass { item.append(DicomJSON.member(DicomTag(0x0008, 0x1150), vr: .UI, strings: [v])) }
            if let v = outcome.sopInstance { item.append(DicomJSON.member(DicomTag(0x0008, 0x1155), vr: .UI, strings: [v])) }
            return item
        }
        // The reason in words goes in TextValue (0040,A160): the standard's item has only the code.
        let failed = outcomes.filter { $0.failure != nil }.map { outcome in
            reference(outcome) + [DicomJSON.member(DicomTag(0x0008, 0x1197), vr: .US, numbers: [Int(outcome.failure ?? 0x0110)])]
                + (outcome.note.map { [DicomJSON.member(DicomTag(0x0040, 0xA160), vr: .UT, strings: [$0])] } ?? [])
        }
        let stored = outcomes.filter { $0.failure == nil }.map { outcome in
            reference(outcome) + [DicomJSON.member(DicomTag(0x0008, 0x1190), vr: .UR, strings: [
                "\(root)/studies/\(outcome.studyUID ?? "")/series/\(outcome.seriesUID ?? "")/instances/\(outcome.sopInstance ?? "")"])]
        }
        if !failed.isEmpty { members.append(DicomJSON.member(DicomTag(0x0008, 0x1198), items: failed)) }
        if !stored.isEmpty { members.append(DicomJSON.member(DicomTag(0x0008, 0x1199), items: stored)) }
        return "{" + members.joined(separator: ",") + "}"
    }
}
