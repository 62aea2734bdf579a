import CairnAudit
import CairnAuth
import CairnDICOM
import CairnHTTP
import CairnStore
import Foundation
import HTTPTypes
import Hummingbird
import Synchronization

/// One part of a multipart WADO-RS response: its content type and the original-byte ranges of
/// one blob that make it up (a whole file, a native frame, or an encapsulated frame's fragments).
struct WadoPart: Sendable {
    var contentType: String
    var record: BlobRecord
    var ranges: [Range<UInt64>]
    var length: UInt64 { ranges.reduce(0) { $0 + UInt64($1.count) } }
}

extension NodeAPI {
    // MARK: instances

    /// Retrieve study, series or instance: `multipart/related; type="application/dicom"`, each
    /// part an instance's original bytes. Cairn never transcodes: without a `transfer-syntax`
    /// parameter (or with `*`) each instance comes as stored and its part says in which syntax; a
    /// request for one particular syntax that an instance is not stored in is a 406.
    func retrieve(_ request: Request, _ context: NodeRequestContext) async throws -> Response {
        let action = "dicomweb.retrieve"
        let (grant, dataset) = try await dicomWebAccess(request, context, action: action, lookup: .whenNothingFound)
        let instances = try namedInstances(context, dataset: dataset, grant: grant, action: action)
        let accepted = MediaRange.parseAccept(request.headers[.accept])
        let choice = accepted.first { range in
            if range.mediaType == "application/dicom" {
                return instances.count == 1 && (range.transferSyntax.map { $0 == "*" || $0 == instances[0].instance.transferSyntax } ?? true)
            }
            guard range.partAdmits("application/dicom") else { return false }
            guard let wanted = range.transferSyntax, wanted != "*" else { return true }
            return instances.allSatisfy { $0.instance.transferSyntax == wanted }
        }
        guard let choice else {
            let stored = Set(instances.compactMap(\.instance.transferSyntax)).sorted().joined(separator: ", ")
            let detail = "instances are served as stored (transfer syntax \(stored)); Cairn does not transcode. "
                + "Accept multipart/related; type=\"application/dicom\" (optionally transfer-syntax=*)"
            audit.record(AuditEvent(actor: grant.subject, action: action, dataset: dataset, status: 406, detail: detail))
            throw APIError(.notAcceptable, "not_acceptable", detail)
        }
        let bare = choice.mediaType == "application/dicom"
        let parts = instances.map { instance in
            WadoPart(contentType: "application/dicom; transfer-syntax=" + (instance.instance.transferSyntax ?? TransferSyntax.explicitLittle.uid),
                     record: instance.blob, ranges: [0..<instance.blob.size])
        }
        return try await respond(parts, bare: bare, partType: "application/dicom", etag: Self.entityTag(bare ? "instance" : "instances", instances),
                           request: request, context: context, grant: grant, dataset: dataset, action: action)
    }

    // MARK: metadata

    /// Metadata: the DICOM JSON model of each instance, read from its blob's header frames, with
    /// bulk data (Pixel Data included) as BulkDataURIs this node serves. Instances are parsed in
    /// batches on the worker threads and streamed, so memory stays bounded by a batch.
    func metadata(_ request: Request, _ context: NodeRequestContext) async throws -> Response {
        let action = "dicomweb.metadata"
        let (grant, dataset) = try await dicomWebAccess(request, context, action: action, lookup: .whenNothingFound)
        guard MediaRange.acceptsDicomJSON(request.headers[.accept]) else {
            audit.record(AuditEvent(actor: grant.subject, action: action, dataset: dataset, status: 406, detail: "Accept: \(request.headers[.accept] ?? "")"))
            throw APIError(.notAcceptable, "not_acceptable", "metadata is application/dicom+json; XML is not provided")
        }
        let instances = try namedInstances(context, dataset: dataset, grant: grant, action: action)
        let etag = Self.entityTag("metadata", instances)
        if let ifNoneMatch = request.headers[.ifNoneMatch], Self.matches(ifNoneMatch, etag: etag) {
            audit.record(AuditEvent(actor: grant.subject, action: action, dataset: dataset, bytes: 0, status: 304,
                                    detail: "\(instances.count) instances"))
            return Response(status: .notModified, headers: [.eTag: etag])
        }
        let store = store, audit = audit, root = serviceRoot(request, context, dataset: dataset)
        // The first batch is made before the head is sent, so a blob that cannot be read is a clean error.
        let batchSize = 64
        let first: [String]
        do {
            first = try await offload { try Self.metadataBatch(Array(instances.prefix(batchSize)), store: store, root: root) }
        } catch {
            audit.record(AuditEvent(actor: grant.subject, action: action, dataset: dataset, status: Int(APIError.from(error).status.code),
                                    detail: "\(error)"))
            throw APIError.from(error)
        }
        let executor = bodyExecutor(context)
        return Response(status: .ok, headers: [.contentType: "application/dicom+json", .eTag: etag], body: ResponseBody { writer in
            var bytes = 0
            do {
                try await withTaskExecutorPreference(executor) {
                    var batch = first
                    var start = 0
                    while true {
                        var text = start == 0 ? "[" : ","
                        text += batch.joined(separator: ",")
                        start += batch.count
                        if start >= instances.count { text += "]" }
                        bytes += text.utf8.count
                        try await writer.write(ByteBuffer(string: text))
                        if start >= instances.count { break }
                        let next = Array(instances[start..<min(start + batchSize, instances.count)])
                        batch = try await offload { try Self.metadataBatch(next, store: store, root: root) }
                    }
                }
                try await writer.finish(nil)
            } catch {
                audit.record(AuditEvent(actor: grant.subject, action: action, dataset: dataset, bytes: Int64(bytes), status: 200,
                                        detail: "\(instances.count) instances; cut short: \(error)"))
                throw error
            }
            audit.record(AuditEvent(actor: grant.subject, action: action, dataset: dataset,
                                    digest: instances.count == 1 ? instances[0].blob.digest.description : nil,
                                    bytes: Int64(bytes), status: 200, detail: "\(instances.count) instances"))
        })
    }

    /// The metadata objects of a batch, parsed concurrently, in order.
    static func metadataBatch(_ batch: [StoredInstance], store: BlobStore, root: String) throws -> [String] {
        let results = Mutex([Result<String, any Error>](repeating: .success(""), count: batch.count))
        DispatchQueue.concurrentPerform(iterations: batch.count) { index in
            let result = Result { try metadataJSON(batch[index], store: store, root: root) }
            results.withLock { $0[index] = result }
        }
        return try results.withLock { $0 }.map { try $0.get() }
    }

    static func metadataJSON(_ stored: StoredInstance, store: BlobStore, root: String) throws -> String {
        let reader = try store.reader(for: stored.blob)
        let file: DicomFile
        do { file = try reader.parseDicom() } catch {
            throw APIError(.internalServerError, "unreadable", "instance \(stored.blob.digest) cannot be parsed: \(error)")
        }
        let i = stored.instance
        let base = "\(root)/studies/\(i.studyUID ?? "")/series/\(i.seriesUID ?? "")/instances/\(i.sopInstanceUID ?? "")/bulkdata/\(stored.blob.digest.hex)/"
        // A deflated data set's offsets are not file offsets: its bulk data is left out.
        let uri: DicomJSON.BulkDataURI? = file.offsetsAreFileOffsets ? { offset, length in base + "\(offset)-\(length)" } : nil
        return DicomJSON.encode(file.dataSet, bulkDataURI: uri)
    }

    // MARK: frames

    /// Frames: each requested frame one part, cut from the stored blob (only the blob frames that
    /// hold it are decoded). Native frames are `application/octet-stream`; encapsulated ones the
    /// media type of their transfer syntax (image/jpeg, image/jls, image/jp2 …), as stored.
    func frames(_ request: Request, _ context: NodeRequestContext) async throws -> Response {
        let action = "dicomweb.frames"
        let (grant, dataset) = try await dicomWebAccess(request, context, action: action, lookup: .whenNothingFound)
        let instance = try namedInstance(context, dataset: dataset, grant: grant, action: action)
        func refuse(_ status: HTTPResponse.Status, _ code: String, _ detail: String) -> APIError {
            audit.record(AuditEvent(actor: grant.subject, action: action, dataset: dataset, digest: instance.blob.digest.description,
                                    status: Int(status.code), detail: detail))
            return APIError(status, code, detail)
        }
        let listText = context.parameters.get("frames") ?? ""
        let pieces = listText.split(separator: ",", omittingEmptySubsequences: false)
        let requested = pieces.compactMap { Int($0) }
        guard !pieces.isEmpty, pieces.count <= 10_000, requested.count == pieces.count, requested.allSatisfy({ $0 >= 1 }) else {
            throw refuse(.badRequest, "bad_request", "'\(listText.prefix(80))' is not a frame list (1-based numbers, comma-separated)")
        }
        guard Set(requested).count == requested.count else {
            throw refuse(.badRequest, "bad_request", "the frame list names a frame twice")
        }
        let store = store, cache = frameLayouts
        let layout: FrameLayout
        do {
            if let indexed = FrameLayout(indexed: instance.instance) {
                layout = indexed
            } else {
                layout = try await offload {
                    try cache.layout(for: instance.blob.digest) { try FrameLayout(reader: try store.reader(for: instance.blob)) }
                }
            }
        } catch let error as FrameLayout.Unsupported {
            throw refuse(error.status, error.code, error.detail)
        } catch {
            let failure = APIError.from(error)
            throw refuse(failure.status, failure.error, failure.detail)
        }
        if let beyond = requested.first(where: { $0 > layout.frames.count }) {
            throw refuse(.badRequest, "frame_out_of_range",
                         "frame \(beyond) is out of range: instance \(instance.instance.sopInstanceUID ?? "") has \(layout.frames.count) frames")
        }
        let stored = layout.mediaType
        let choice = MediaRange.parseAccept(request.headers[.accept]).first { range in
            guard let type = range.partType else { return false }
            // A named transfer syntax must be the stored one: Cairn does not transcode.
            // (Native little-endian frames are the same bytes under either VR encoding's UID.)
            if let wanted = range.transferSyntax, wanted != "*", wanted != layout.transferSyntax,
               !(stored == PixelMediaType.native && wanted == TransferSyntax.implicitLittle.uid) { return false }
            if range.partAdmits(stored) { return true }
            // Encapsulated frames labelled octet-stream, for a client that asked for them as stored.
            return type == PixelMediaType.native && range.transferSyntax != nil
        }
        guard let choice else {
            throw refuse(.notAcceptable, "not_acceptable",
                         "frames of this instance are stored as \(stored) (transfer syntax \(layout.transferSyntax)); "
                         + "Cairn does not transcode: accept multipart/related; type=\"\(stored)\", or transfer-syntax=*")
        }
        let label = (choice.partType == PixelMediaType.native && stored != PixelMediaType.native ? PixelMediaType.native : stored)
            + "; transfer-syntax=" + layout.transferSyntax
        let parts = requested.map { WadoPart(contentType: label, record: instance.blob, ranges: layout.frames[$0 - 1]) }
        let partType = choice.partType.map { $0.contains("*") ? stored : $0 } ?? stored
        return try await respond(parts, bare: false, partType: partType,
                           etag: nil, request: request, context: context, grant: grant, dataset: dataset, action: action,
                           detail: "frames \(listText.prefix(200))")
    }

    // MARK: bulk data

    /// A BulkDataURI from metadata: `bulkdata/{blob hex}/{offset}-{length}`, a value's byte range
    /// in the original bytes of the instance's stored file. One part, or the bare bytes when the client accepts only
    /// `application/octet-stream`; a Range header addresses the value's bytes.
    func bulkdata(_ request: Request, _ context: NodeRequestContext) async throws -> Response {
        let action = "dicomweb.bulkdata"
        let (grant, dataset) = try await dicomWebAccess(request, context, action: action, lookup: .whenNothingFound)
        let named = try namedInstances(context, dataset: dataset, grant: grant, action: action)
        let text = context.parameters.get("value") ?? ""
        let fields = text.split(separator: "-", omittingEmptySubsequences: false).map { UInt64($0) }
        // The URI names the blob too: two stored files may carry the same SOP Instance UID.
        let blob = context.parameters.get("blob") ?? ""
        guard let instance = named.first(where: { $0.blob.digest.hex == blob }), fields.count == 2,
              let offset = fields[0], let length = fields[1],
              offset <= instance.blob.size, length <= instance.blob.size - offset else {
            deny(actor: grant.subject, action: action, dataset: dataset, status: 404,
                 detail: "no bulk data \(blob.prefix(64))/\(text.prefix(60))", context: context)
            throw APIError.notFound("no bulk data '\(blob.prefix(64))/\(text.prefix(60))' in this instance (expected BLOB/OFFSET-LENGTH within the file)")
        }
        var value = offset..<(offset + length)
        var status = HTTPResponse.Status.ok
        var contentRange: String?
        switch ByteRanges.resolve(request.headers[.range], size: length, maxRanges: 1) {
        case .whole: break
        case .partial(let ranges):
            value = (offset + ranges[0].lowerBound)..<(offset + ranges[0].upperBound)
            status = .partialContent
            contentRange = ByteRanges.contentRange(ranges[0], size: length)
        case .unsatisfiable, .tooMany:
            audit.record(AuditEvent(actor: grant.subject, action: action, dataset: dataset, digest: instance.blob.digest.description,
                                    range: request.headers[.range].map { String($0.prefix(100)) }, status: 416, detail: "value \(text)"))
            throw APIError(.rangeNotSatisfiable, "range_not_satisfiable", "one range within the value's \(length) bytes",
                           headers: [.contentRange: "bytes */\(length)"])
        }
        let accepted = MediaRange.parseAccept(request.headers[.accept])
        let bare = !accepted.contains { $0.partAdmits(PixelMediaType.native) }
        guard !bare || accepted.contains(where: { $0.admits(PixelMediaType.native) }) else {
            audit.record(AuditEvent(actor: grant.subject, action: action, dataset: dataset, digest: instance.blob.digest.description,
                                    status: 406, detail: "Accept: \(request.headers[.accept]?.prefix(200) ?? "")"))
            throw APIError(.notAcceptable, "not_acceptable", "bulk data is application/octet-stream (in multipart/related or bare)")
        }
        var response = try await respond([WadoPart(contentType: PixelMediaType.native, record: instance.blob, ranges: [value])], bare: bare,
                                   partType: PixelMediaType.native, etag: "\"\(instance.blob.digest.hex)-\(value.lowerBound)-\(value.upperBound)\(bare ? "" : "-mp")\"",
                                   request: request, context: context, grant: grant,
                                   dataset: dataset, action: action, detail: "value \(text)")
        if response.status == .ok {  // not a 304
            response.status = status
            if let contentRange { response.headers[.contentRange] = contentRange }
        }
        return response
    }

    // MARK: the response body

    /// Streams parts (or one bare part) from their blobs; each blob is opened as its part starts,
    /// and every blob served is audited with the bytes sent. The first part's first bytes are read
    /// and checked before the headers: a missing or damaged first blob is a clean 500. A later part
    /// that fails cuts the body short, and the audit record of each blob says so.
    func respond(_ parts: [WadoPart], bare: Bool, partType: String, etag: String?, request: Request,
                 context: NodeRequestContext, grant: AccessGrant, dataset: String, action: String,
                 detail: String? = nil) async throws -> Response {
        // The same resource is the same bytes: the boundary follows the entity tag when there is one.
        let framing = etag.map { MultipartFraming(boundary: "cairn-" + $0.filter { $0 != "\"" }) } ?? MultipartFraming()
        // Caches revalidate: a study or series changes as instances are stored, and anything may go
        // when a subject is erased (the 304 is cheap).
        var headers: HTTPFields = [.cacheControl: "private, no-cache", .vary: "Accept"]
        if let etag {
            headers[.eTag] = etag
            if let ifNoneMatch = request.headers[.ifNoneMatch], Self.matches(ifNoneMatch, etag: etag) {
                audit.record(AuditEvent(actor: grant.subject, action: action, dataset: dataset, bytes: 0, status: 304, detail: detail))
                return Response(status: .notModified, headers: headers)
            }
        }
        if bare, let part = parts.first, parts.count == 1 {
            headers[.contentType] = part.contentType
            headers[.contentLength] = String(part.length)
        } else {
            headers[.contentType] = framing.contentType(partType: partType)
            headers[.contentLength] = String(framing.bodyLength(parts.map { ($0.contentType, $0.length) }))
        }
        var first: ReaderHandoff?
        if let part = parts.first, let range = part.ranges.first {
            do {
                first = ReaderHandoff(try store.reader(for: part.record))
            } catch {
                audit.record(AuditEvent(actor: grant.subject, action: action, dataset: dataset, digest: part.record.digest.description,
                                        bytes: 0, status: 500, detail: "\(error)"))
                throw APIError.from(error)
            }
            if let first {
                try await fetchFirstChunk(of: range, stored: false, reader: first) { range, bytes, status, failure in
                    AuditEvent(actor: grant.subject, action: action, dataset: dataset, digest: part.record.digest.description,
                               range: range, bytes: bytes, status: status, detail: failure)
                }
            }
        }
        let store = store, audit = audit, metrics = metrics, handoff = first
        let executor = bodyExecutor(context)
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            var sentByBlob: [(BlobDigest, UInt64)] = []
            var failure: (any Error)?
            do {
                try await withTaskExecutorPreference(executor) {
                    var reader: BlobReader?
                    for (index, part) in parts.enumerated() {
                        if !bare {
                            try await writer.write(ByteBuffer(string: framing.partHead(index: index, contentType: part.contentType, length: part.length)))
                        }
                        if reader?.digest != part.record.digest {
                            reader = try index == 0 ? handoff?.reader ?? store.reader(for: part.record) : store.reader(for: part.record)
                        }
                        guard let reader else { break }
                        var sent: UInt64 = 0
                        defer {
                            if sentByBlob.last?.0 == part.record.digest, let last = sentByBlob.popLast() {
                                sentByBlob.append((last.0, last.1 + sent))
                            } else {
                                sentByBlob.append((part.record.digest, sent))
                            }
                        }
                        for (r, range) in part.ranges.enumerated() {
                            try await Self.send(range, from: reader, to: &writer, sent: &sent,
                                                first: index == 0 && r == 0 ? handoff?.firstChunk : nil)
                        }
                        metrics.bytesServed.increment(by: Int64(sent))
                    }
                    if !bare { try await writer.write(ByteBuffer(string: framing.closing)) }
                }
                try await writer.finish(nil)
            } catch {
                if case StoreError.corruptFrame = error { metrics.checksumFailures.increment() }
                failure = error
            }
            for (digest, bytes) in sentByBlob {
                audit.record(AuditEvent(actor: grant.subject, action: action, dataset: dataset, digest: digest.description,
                                        bytes: Int64(bytes), status: 200,
                                        detail: [detail, failure.map { "response cut short: \($0)" }].compactMap { $0 }.joined(separator: "; ")))
            }
            if let failure { throw failure }
        })
    }
}

/// Where each frame of an instance lies in its original bytes, from its parsed header.
struct FrameLayout: Sendable {
    var frames: [[Range<UInt64>]]
    var transferSyntax: String
    var mediaType: String

    init(frames: [[Range<UInt64>]], transferSyntax: String, mediaType: String) {
        self.frames = frames
        self.transferSyntax = transferSyntax
        self.mediaType = mediaType
    }

    struct Unsupported: Error {
        var status: HTTPResponse.Status
        var code: String
        var detail: String
    }

    /// Native little-endian frames straight from the index (no blob read until the frame itself);
    /// nil when the index cannot say (encapsulated data, other byte orders, older rows).
    init?(indexed instance: InstanceRecord) {
        let littleEndianNative = [TransferSyntax.implicitLittle.uid, TransferSyntax.explicitLittle.uid]
        guard let syntax = instance.transferSyntax, littleEndianNative.contains(syntax), let length = instance.frameLength,
              length > 0, !instance.frameOffsets.isEmpty, instance.frameOffsets.count == max(1, instance.frames ?? 1) else { return nil }
        frames = instance.frameOffsets.map { [$0..<($0 + UInt64(length))] }
        transferSyntax = TransferSyntax.explicitLittle.uid  // native pixel bytes are the same in either VR encoding
        mediaType = PixelMediaType.native
    }

    init(reader: BlobReader) throws {
        let file = try reader.parseDicom()
        let ds = file.dataSet
        transferSyntax = file.transferSyntax == .implicitLittle ? TransferSyntax.explicitLittle.uid : file.transferSyntax.uid
        mediaType = PixelMediaType.forTransferSyntax(transferSyntax)
        guard let pixels = ds[.pixelData] else {
            throw Unsupported(status: .notFound, code: "no_pixel_data", detail: "the instance has no Pixel Data, so no frames")
        }
        guard file.offsetsAreFileOffsets else {
            throw Unsupported(status: .notImplemented, code: "not_implemented", detail: "frames of a deflated data set are not cut out")
        }
        let count = max(1, ds.integer("NumberOfFrames") ?? 1)
        guard count <= PixelDataLayout.maxIndexedFrames else {
            throw Unsupported(status: .notImplemented, code: "not_implemented",
                              detail: "more than \(PixelDataLayout.maxIndexedFrames) frames are not cut out; retrieve the instance")
        }
        switch pixels.value {
        case .bulk(let offset, let length):
            let bits = ds.integer("BitsAllocated") ?? 16
            if file.transferSyntax.bigEndian && bits > 8 {
                throw Unsupported(status: .notAcceptable, code: "not_acceptable",
                                  detail: "big-endian pixel data would need byte swapping; retrieve the instance instead")
            }
            let frameSize: Int
            if let whole = PixelDataLayout.nativeFrameLength(ds) {
                frameSize = whole
            } else if count == 1, bits % 8 != 0 {
                frameSize = length  // one frame of packed bits: the whole value
            } else {
                throw Unsupported(status: .notImplemented, code: "not_implemented",
                                  detail: "native pixel data of \(bits) bits, or with Rows/Columns/SamplesPerPixel out of range, is not cut into frames")
            }
            guard frameSize > 0, count <= length / frameSize else {
                throw Unsupported(status: .internalServerError, code: "damaged",
                                  detail: "Pixel Data holds \(length) bytes, fewer than \(count) frames of \(frameSize)")
            }
            frames = (0..<count).map { [UInt64(offset + $0 * frameSize)..<UInt64(offset + ($0 + 1) * frameSize)] }
        case .encapsulated(let encapsulated):
            let starts = PixelDataLayout(file: file).frameOffsets
            guard starts.count == count else {
                throw Unsupported(status: .notImplemented, code: "not_implemented",
                                  detail: "the frame boundaries of this encapsulated pixel data cannot be determined (no offset table)")
            }
            guard zip(starts, starts.dropFirst()).allSatisfy({ $0 < $1 }) else {
                throw Unsupported(status: .internalServerError, code: "damaged", detail: "the offset table's frames are not in order")
            }
            // One pass: each fragment belongs to the last frame that starts at or before it.
            var cut: [[Range<UInt64>]] = Array(repeating: [], count: starts.count)
            var frame = 0
            for fragment in encapsulated.fragments {
                let at = UInt64(fragment.itemOffset)
                while frame + 1 < starts.count && at >= starts[frame + 1] { frame += 1 }
                if at >= starts[frame] { cut[frame].append(UInt64(fragment.valueOffset)..<UInt64(fragment.valueOffset + fragment.length)) }
            }
            frames = cut
        default:
            throw Unsupported(status: .internalServerError, code: "damaged", detail: "Pixel Data has no value")
        }
    }
}
