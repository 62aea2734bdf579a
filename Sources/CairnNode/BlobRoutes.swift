import CairnAudit
import CairnHTTP
import CairnStore
import Foundation
import HTTPTypes
import Hummingbird

/// A reader handed from the handler, which opens it before any header is sent (so a missing
/// file is a clean error), to the response body task, the only one that uses it afterwards.
final class ReaderHandoff: @unchecked Sendable {
    let reader: BlobReader
    /// The first chunk of the body, read and checked before the headers went out, which the body
    /// then sends first.
    var firstChunk: (range: Range<UInt64>, bytes: ByteBuffer)?
    init(_ reader: BlobReader) { self.reader = reader }
}

/// Makes the audit event of one blob request from what its response did: ranges sent, bytes,
/// status and a detail.
typealias BlobAuditEvent = @Sendable (_ range: String?, _ bytes: Int64, _ status: Int, _ detail: String?) -> AuditEvent

extension NodeAPI {
    /// Bytes read and written per step of a response, rounded up to a frame boundary so no frame
    /// is decoded twice. The channel's writability holds a slow client to about one step in
    /// flight, so memory per connection stays bounded.
    static let chunkSize: UInt64 = 256 << 10

    func addBlobRoutes(to router: Router<NodeRequestContext>) {
        router.get("/v1/blobs/:digest") { request, context in try await blob(request, context: context, head: false) }
        router.head("/v1/blobs/:digest") { request, context in try await blob(request, context: context, head: true) }
    }

    func blob(_ request: Request, context: NodeRequestContext, head: Bool) async throws -> Response {
        let action = head ? "head" : "read"
        let text = context.parameters.get("digest") ?? ""
        guard let digest = BlobDigest(parsing: text) else {
            // Checked after the token, so an anonymous client learns nothing, not even about syntax.
            let grant = try await authorize(request, context: context, scope: .read, action: action)
            deny(actor: grant.subject, action: action, status: 400, detail: "malformed digest", context: context)
            throw APIError.badRequest("'\(text.prefix(100))' is not a digest (sha256:<64 lowercase hex>)")
        }
        let grant = try await authorize(request, context: context, scope: .read, action: action)
        // Not held, or held only by datasets the token does not grant: the same 404, so a token
        // cannot probe what other datasets contain.
        // From memory when the record map has the row; else from the index, off the event loop.
        let store = store, datasets = grant.datasets
        var found = store.cachedRecord(digest, inAnyOf: datasets)
        if found == nil {
            found = handlesOnEventLoop ? try await offEventLoop { try store.record(digest, inAnyOf: datasets) }
                : try store.record(digest, inAnyOf: datasets)
        }
        guard let (record, dataset) = found else {
            deny(actor: grant.subject, action: action, digest: digest.description, status: 404,
                 detail: "not in the datasets this token grants", context: context)
            throw APIError.notFound("blob \(digest) is not in the datasets this token grants")
        }
        let event: BlobAuditEvent = { range, bytes, status, detail in
            AuditEvent(actor: grant.subject, action: action, dataset: dataset, digest: digest.description, range: range,
                       bytes: bytes, status: status, detail: detail)
        }
        // Original bytes whose frames are all in the frame cache are sent from memory, here on the
        // connection's event loop: no file is opened and nothing is decoded. Whole zstd blobs for
        // a client that accepts zstd, HEAD requests and raw blobs take the path below.
        let mayPassStored = record.codec == .zstd && request.headers[.range] == nil
            && Self.accepts("zstd", request.headers[.acceptEncoding])
        if !head, !mayPassStored, store.frameCache.isEnabled,
           let cached = try cachedOriginal(record, request: request, headers: Self.blobHeaders(etag: "\"\(digest)\""), event: event) {
            return cached
        }
        // The blob file is opened before any header is sent, so a missing or damaged file is a
        // clean error rather than a truncated body. Off the event loop: opening may wait on the
        // disk or the bucket, and what follows decodes.
        let handoff: ReaderHandoff
        let carriesChecksums: Bool
        do {
            (handoff, carriesChecksums) = try await withTaskExecutorPreference(decodeExecutor) {
                let reader = try openReader(record)
                do {
                    return (ReaderHandoff(reader), try mayPassStored && reader.storedSize == record.storedSize && reader.framesCarryChecksums())
                } catch {
                    throw APIError.from(error)
                }
            }
        } catch {
            audit.record(event(nil, 0, 500, "\(error)"))
            throw error
        }
        // A client that accepts zstd and asks for the whole blob gets the stored file as it is
        // (Content-Encoding: zstd, a seekable-format stream any zstd decoder reads): nothing to
        // decode here, and half the bytes on the wire. Ranges always address the original bytes.
        // Only blobs whose frames carry zstd checksums qualify: the node does not decode (so does
        // not check) what it passes through, and the client's decoder must be able to. The file
        // must also be the one the row describes (`cairn recompress` may have replaced it since).
        let sendStored = carriesChecksums
        let etag = sendStored ? "\"\(digest)+zstd\"" : "\"\(digest)\""
        let headers = Self.blobHeaders(etag: etag)
        if let ifNoneMatch = request.headers[.ifNoneMatch], Self.matches(ifNoneMatch, etag: etag) {
            audit.record(event(nil, 0, 304, nil))
            return Response(status: .notModified, headers: headers)
        }
        let rangeHeader = Self.effectiveRange(request.headers, etag: etag)
        if sendStored {
            if !head {
                try await withTaskExecutorPreference(decodeExecutor) {
                    try await fetchFirstChunk(of: 0..<record.storedSize, stored: true, reader: handoff, event: event)
                }
            }
            return stored(record, reader: handoff, head: head, headers: headers, context: context, event: event)
        }
        return try await original(record, reader: handoff, rangeHeader: rangeHeader, etag: etag, head: head, headers: headers,
                                  context: context, event: event)
    }

    static func blobHeaders(etag: String) -> HTTPFields {
        [.eTag: etag, .acceptRanges: "bytes", .vary: "Accept-Encoding", .cacheControl: "private, max-age=31536000, immutable"]
    }

    /// What a request for original bytes gets: the ranges to send, the status and headers, and
    /// the multipart framing when there are several ranges. Throws 416 (audited).
    struct OriginalPlan {
        var ranges: [Range<UInt64>]
        var status: HTTPResponse.Status
        var headers: HTTPFields
        var multipart: MultipartByteRanges?
        /// The ranges as the audit records them (nil for the whole blob).
        var rangeText: String?
    }

    func plan(_ record: BlobRecord, rangeHeader: String?, etag: String, headers: HTTPFields,
              event: BlobAuditEvent) throws -> OriginalPlan {
        var headers = headers
        let size = record.size
        switch ByteRanges.resolve(rangeHeader, size: size, maxRanges: config.maxRanges) {
        case .whole:
            headers[.contentLength] = String(size)
            headers[.contentType] = "application/octet-stream"
            return OriginalPlan(ranges: [0..<size], status: .ok, headers: headers, multipart: nil, rangeText: nil)
        case .unsatisfiable:
            audit.record(event(rangeHeader, 0, 416, nil))
            throw APIError(.rangeNotSatisfiable, "range_not_satisfiable", "no range in '\(rangeHeader ?? "")' overlaps \(size) bytes",
                            headers: [.contentRange: "bytes */\(size)", .acceptRanges: "bytes", .eTag: etag])
        case .tooMany(let count):
            audit.record(event("\(count) ranges", 0, 416, nil))
            throw APIError(.rangeNotSatisfiable, "too_many_ranges", "\(count) ranges in one request; the limit is \(config.maxRanges)",
                            headers: [.contentRange: "bytes */\(size)", .acceptRanges: "bytes", .eTag: etag])
        case .partial(let resolved):
            var multipart: MultipartByteRanges?
            if resolved.count == 1 {
                headers[.contentRange] = ByteRanges.contentRange(resolved[0], size: size)
                headers[.contentLength] = String(resolved[0].count)
                headers[.contentType] = "application/octet-stream"
            } else {
                let parts = MultipartByteRanges(ranges: resolved, size: size, contentType: "application/octet-stream",
                                                boundary: "cairn-" + UUID().uuidString.lowercased())
                headers[.contentType] = parts.contentType
                headers[.contentLength] = String(parts.contentLength)
                multipart = parts
            }
            return OriginalPlan(ranges: resolved, status: .partialContent, headers: headers, multipart: multipart,
                                rangeText: resolved.map { "\($0.lowerBound)-\($0.upperBound - 1)" }.joined(separator: ","))
        }
    }

    /// The Range header that applies: If-Range with anything but our (strong) ETag means "send
    /// the whole thing" (RFC 9110 §13.1.5).
    static func effectiveRange(_ headers: HTTPFields, etag: String) -> String? {
        guard let range = headers[.range] else { return nil }
        if let ifRange = headers[.ifRange], Self.withoutBlanks(ifRange[...]) != etag { return nil }
        return range
    }

    /// One range's cached frames as one buffer (the slice itself when there is one), if it is at
    /// most `oneBufferLimit`: Hummingbird writes such a body with the head and the end in one
    /// flush (one writev), where a body written piece by piece costs a flush and a system call
    /// per piece.
    static func oneBuffer(_ frames: [ByteBuffer], count: UInt64) -> ByteBuffer? {
        if frames.count == 1, let only = frames.first { return only }
        guard count <= oneBufferLimit else { return nil }
        var body = ByteBufferAllocator().buffer(capacity: Int(count))
        for slice in frames { body.writeImmutableBuffer(slice) }
        return body
    }

    /// A one-range answer from cached frames in one buffer (`oneBuffer`), counted and audited as it
    /// is handed to the connection; nil when a frame is not cached or the range needs streaming.
    func cachedOneBuffer(_ record: BlobRecord, plan: OriginalPlan, event: BlobAuditEvent) -> ByteBuffer? {
        guard plan.ranges.count == 1, let range = plan.ranges.first, let frames = store.cachedFrames(of: record, range: range),
              let body = Self.oneBuffer(frames, count: UInt64(range.count)) else { return nil }
        metrics.bytesServed.increment(by: Int64(body.readableBytes))
        audit.record(event(plan.rangeText, Int64(body.readableBytes), plan.status.code, nil))
        return body
    }

    /// The whole answer to a GET of original bytes that the caches can give without waiting (a
    /// verified token, the blob's row in memory, every frame cached, one range), computed on the
    /// event loop before the request reaches the router (`ImmediateResponseHandler`); nil leaves
    /// the request to the route, which answers everything else (and every refusal) as before.
    func immediateBlobAnswer(_ request: HTTPRequest) -> ImmediateResponse? {
        let start = ContinuousClock.now
        guard request.method == .get, store.frameCache.isEnabled, audit.problem == nil,
              let path = request.path, path.hasPrefix("/v1/blobs/") else { return nil }
        let text = path.dropFirst(10)
        guard !text.utf8.contains(UInt8(ascii: "/")), !text.utf8.contains(UInt8(ascii: "?")), let digest = BlobDigest(parsing: String(text)),
              let grant = verifier.cachedGrant(authorization: request.headerFields[.authorization]), grant.allows(.read),
              let found = store.cachedRecord(digest, inAnyOf: grant.datasets) else { return nil }
        let (record, dataset) = found
        let headers = request.headerFields
        if record.codec == .zstd, headers[.range] == nil, Self.accepts("zstd", headers[.acceptEncoding]) { return nil }
        let etag = "\"\(digest)\""
        let event: BlobAuditEvent = { range, bytes, status, detail in
            AuditEvent(actor: grant.subject, action: "read", dataset: dataset, digest: digest.description, range: range,
                       bytes: bytes, status: status, detail: detail)
        }
        let answer: ImmediateResponse
        if let ifNoneMatch = headers[.ifNoneMatch], Self.matches(ifNoneMatch, etag: etag) {
            audit.record(event(nil, 0, 304, nil))
            answer = ImmediateResponse(head: HTTPResponse(status: .notModified, headerFields: Self.blobHeaders(etag: etag)), body: ByteBuffer())
        } else {
            let rangeHeader = Self.effectiveRange(headers, etag: etag)
            switch ByteRanges.resolve(rangeHeader, size: record.size, maxRanges: config.maxRanges) {
            case .whole: break
            case .partial(let ranges) where ranges.count == 1: break
            default: return nil  // 416 and multipart: the route
            }
            guard let plan = try? plan(record, rangeHeader: rangeHeader, etag: etag, headers: Self.blobHeaders(etag: etag), event: event),
                  let body = cachedOneBuffer(record, plan: plan, event: event) else { return nil }
            answer = ImmediateResponse(head: HTTPResponse(status: plan.status, headerFields: plan.headers), body: body)
        }
        metrics.requestFinished(route: "/v1/blobs/{digest}", method: "GET", status: answer.head.status.code,
                                duration: ContinuousClock.now - start)
        return answer
    }

    /// The response from cached frames when every frame the request touches is cached (a 304 or
    /// 416 needs no frames at all), else nil.
    func cachedOriginal(_ record: BlobRecord, request: Request, headers: HTTPFields,
                        event: @escaping BlobAuditEvent) throws -> Response? {
        guard let etag = headers[.eTag] else { return nil }
        if let ifNoneMatch = request.headers[.ifNoneMatch], Self.matches(ifNoneMatch, etag: etag) {
            audit.record(event(nil, 0, 304, nil))
            return Response(status: .notModified, headers: headers)
        }
        let plan = try plan(record, rangeHeader: Self.effectiveRange(request.headers, etag: etag), etag: etag, headers: headers, event: event)
        if let body = cachedOneBuffer(record, plan: plan, event: event) {
            return Response(status: plan.status, headers: plan.headers, body: .init(byteBuffer: body))
        }
        for range in plan.ranges where store.cachedFrames(of: record, range: range) == nil { return nil }
        let metrics = metrics, audit = audit
        // Larger answers are written a megabyte at a time, each looked up again as it is written:
        // a slow client holds one batch of frames, not the whole answer, and frames evicted
        // meanwhile are decoded again from the file.
        let store = store, decoder = decodeExecutor, ranges = plan.ranges
        return Response(status: plan.status, headers: plan.headers, body: ResponseBody { writer in
            var sent: UInt64 = 0
            var reader: BlobReader?
            do {
                for (index, range) in ranges.enumerated() {
                    if let parts = plan.multipart { try await writer.write(ByteBuffer(string: parts.partHeaders[index])) }
                    var position = range.lowerBound
                    while position < range.upperBound {
                        let batch = position..<min(range.upperBound, position + UInt64(Self.oneBufferLimit))
                        if reader == nil, let frames = store.cachedFrames(of: record, range: batch) {
                            try await writer.write(contentsOf: frames)
                            sent += UInt64(batch.count)
                            position = batch.upperBound
                            continue
                        }
                        let opened: BlobReader
                        if let reader { opened = reader } else {
                            opened = try await withTaskExecutorPreference(decoder) { try openReader(record) }
                        }
                        reader = opened
                        try await Self.send(position..<range.upperBound, from: opened, to: &writer, sent: &sent, decoder: decoder)
                        position = range.upperBound
                    }
                }
                if let parts = plan.multipart { try await writer.write(ByteBuffer(string: parts.closing)) }
                try await writer.finish(nil)
            } catch {
                if case StoreError.corruptFrame = error { metrics.checksumFailures.increment() }
                metrics.bytesServed.increment(by: Int64(sent))
                audit.record(event(plan.rangeText, Int64(sent), plan.status.code, "response cut short after \(sent) bytes: \(error)"))
                throw error
            }
            metrics.bytesServed.increment(by: Int64(sent))
            audit.record(event(plan.rangeText, Int64(sent), plan.status.code, nil))
        })
    }

    /// Bytes of cached frames sent in one buffer or one write.
    static let oneBufferLimit = 1 << 20

    /// The original bytes: whole (200), one range (206), several (206 multipart/byteranges), or 416.
    func original(_ record: BlobRecord, reader handoff: ReaderHandoff, rangeHeader: String?, etag: String, head: Bool,
                  headers: HTTPFields, context: NodeRequestContext,
                  event: @escaping BlobAuditEvent) async throws -> Response {
        let plan = try plan(record, rangeHeader: rangeHeader, etag: etag, headers: headers, event: event)
        let ranges = plan.ranges, rangeText = plan.rangeText
        if head {
            audit.record(event(rangeText, 0, plan.status.code, nil))
            return Response(status: plan.status, headers: plan.headers)
        }
        if let first = ranges.first {
            try await withTaskExecutorPreference(decodeExecutor) {
                try await fetchFirstChunk(of: first, stored: false, reader: handoff, event: event)
            }
        }
        let metrics = metrics, audit = audit, statusCode = plan.status.code, parts = plan.multipart
        let executor = bodyExecutor(context, prefetching: true), decoder = decodeExecutor
        return Response(status: plan.status, headers: plan.headers, body: ResponseBody { writer in
            let reader = handoff.reader
            var sent: UInt64 = 0
            do {
                try await withTaskExecutorPreference(executor) {
                    for (index, range) in ranges.enumerated() {
                        if let parts { try await writer.write(ByteBuffer(string: parts.partHeaders[index])) }
                        try await Self.send(range, from: reader, to: &writer, sent: &sent, first: index == 0 ? handoff.firstChunk : nil,
                                            decoder: reader.codec == .raw ? nil : decoder)
                    }
                    if let parts { try await writer.write(ByteBuffer(string: parts.closing)) }
                }
                try await writer.finish(nil)
            } catch {
                if case StoreError.corruptFrame = error { metrics.checksumFailures.increment() }
                metrics.bytesServed.increment(by: Int64(sent))
                metrics.framesDecompressed.increment(by: Int64(reader.framesDecompressed))
                audit.record(event(rangeText, Int64(sent), statusCode, "response cut short after \(sent) bytes: \(error)"))
                throw error
            }
            metrics.bytesServed.increment(by: Int64(sent))
            metrics.framesDecompressed.increment(by: Int64(reader.framesDecompressed))
            audit.record(event(rangeText, Int64(sent), statusCode, nil))
        })
    }

    /// The first chunk before any header is sent: fetched (from a bucket) and, for original bytes,
    /// decoded through its frame checksums and kept for the body to send first. A missing,
    /// replaced or damaged blob is then a clean 500, never a 200 whose body is cut short. (Stored
    /// zstd bytes pass through undecoded: the client's decoder checks them.)
    func fetchFirstChunk(of range: Range<UInt64>, stored: Bool, reader handoff: ReaderHandoff,
                         event: BlobAuditEvent) async throws {
        let reader = handoff.reader
        guard !range.isEmpty, !stored || reader.readsOverNetwork else { return }
        do {
            if stored {
                try await reader.prefetchStored(range.lowerBound..<min(range.upperBound, range.lowerBound + Self.chunkSize), next: nil)
                return
            }
            let chunk = range.lowerBound..<reader.chunkEnd(from: range.lowerBound, minimum: Self.chunkSize, limit: range.upperBound)
            try await reader.prefetch(chunk, next: nil)
            var bytes = ByteBufferAllocator().buffer(capacity: chunk.count)
            try bytes.writeWithUnsafeMutableBytes(minimumWritableBytes: chunk.count) { target in
                try reader.read(chunk, into: UnsafeMutableRawBufferPointer(rebasing: target[0..<chunk.count]))
                return chunk.count
            }
            handoff.firstChunk = (chunk, bytes)
        } catch {
            if case StoreError.corruptBlob = error { metrics.checksumFailures.increment() }
            if case StoreError.corruptFrame = error { metrics.checksumFailures.increment() }
            audit.record(event(nil, 0, 500, "\(error)"))
            throw APIError.from(error)
        }
    }

    func openReader(_ record: BlobRecord) throws -> BlobReader {
        do { return try store.reader(for: record) } catch {
            if case StoreError.corruptBlob = error { metrics.checksumFailures.increment() }
            throw APIError.from(error)
        }
    }

    /// The stored zstd file, streamed in chunks as it is on disk.
    func stored(_ record: BlobRecord, reader handoff: ReaderHandoff, head: Bool, headers: HTTPFields,
                context: NodeRequestContext,
                event: @escaping BlobAuditEvent) -> Response {
        var headers = headers
        headers[.contentEncoding] = "zstd"
        headers[.contentType] = "application/octet-stream"
        headers[.contentLength] = String(record.storedSize)
        if head {
            audit.record(event(nil, 0, 200, "zstd-encoded"))
            return Response(status: .ok, headers: headers)
        }
        let metrics = metrics, audit = audit
        let executor = bodyExecutor(context, prefetching: true)
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            var sent: UInt64 = 0
            do {
                try await withTaskExecutorPreference(executor) {
                    try await Self.pump(0..<record.storedSize, to: &writer, sent: &sent,
                                        chunkEnd: { min($0 + Self.chunkSize, record.storedSize) },
                                        prefetch: handoff.reader.readsOverNetwork
                                            ? { try await handoff.reader.prefetchStored($0, next: $1) } : nil,
                                        fill: { try handoff.reader.readStored($0, into: $1) })
                }
                try await writer.finish(nil)
            } catch {
                metrics.bytesServed.increment(by: Int64(sent))
                audit.record(event(nil, Int64(sent), 200, "zstd-encoded; response cut short after \(sent) bytes: \(error)"))
                throw error
            }
            metrics.bytesServed.increment(by: Int64(sent))
            audit.record(event(nil, Int64(sent), 200, "zstd-encoded"))
        })
    }

    /// Whether an Accept-Encoding header admits `coding` (listed, or `*`, with a non-zero q).
    static func accepts(_ coding: String, _ header: String?) -> Bool {
        guard let header else { return false }
        for element in header.split(separator: ",") {
            let parts = element.split(separator: ";").map { Self.withoutBlanks($0).lowercased() }
            guard let name = parts.first, name == coding || name == "*" else { continue }
            let q = parts.dropFirst().first { $0.hasPrefix("q=") }.flatMap { Double($0.dropFirst(2)) } ?? 1
            return q > 0
        }
        return false
    }

    /// Streams `range` in chunks, each read (and, for compressed blobs, decoded and checked)
    /// straight into the buffer that goes to the socket; awaiting the write is the backpressure.
    /// `decoder`: where chunks are decoded (off the event loop), nil to read them where the body runs.
    static func send(_ range: Range<UInt64>, from reader: BlobReader, to writer: inout any ResponseBodyWriter,
                     sent: inout UInt64, first: (range: Range<UInt64>, bytes: ByteBuffer)? = nil,
                     decoder: (any TaskExecutor)? = nil) async throws {
        try await pump(range, to: &writer, sent: &sent, first: first, filler: decoder,
                       chunkEnd: { reader.chunkEnd(from: $0, minimum: chunkSize, limit: range.upperBound) },
                       prefetch: reader.readsOverNetwork ? { try await reader.prefetch($0, next: $1) } : nil,
                       fill: { try reader.read($0, into: $1) })
    }

    /// Writes `range` a chunk at a time: `fill` puts a chunk's bytes straight into the buffer that
    /// goes to the socket.
    /// `prefetch` (blobs in a bucket) gets each chunk before `fill` reads it, and the next chunk,
    /// so the GET for that one runs while this one is written.
    static func pump(_ range: Range<UInt64>, to writer: inout any ResponseBodyWriter, sent: inout UInt64,
                     first: (range: Range<UInt64>, bytes: ByteBuffer)? = nil, filler: (any TaskExecutor)? = nil,
                     chunkEnd: (UInt64) -> UInt64,
                     prefetch: ((Range<UInt64>, Range<UInt64>?) async throws -> Void)? = nil,
                     fill: (Range<UInt64>, UnsafeMutableRawBufferPointer) throws -> Void) async throws {
        var position = range.lowerBound
        while position < range.upperBound {
            let count = Int(chunkEnd(position) - position)
            let chunk = position..<(position + UInt64(count))
            if let first, first.range == chunk {
                try await writer.write(first.bytes)
                position = chunk.upperBound
                sent += UInt64(count)
                continue
            }
            if let prefetch {
                try await prefetch(chunk, chunk.upperBound < range.upperBound ? chunk.upperBound..<chunkEnd(chunk.upperBound) : nil)
            }
            func filled() throws -> ByteBuffer {
                var buffer = ByteBufferAllocator().buffer(capacity: count)
                try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { target in
                    try fill(chunk, UnsafeMutableRawBufferPointer(rebasing: target[0..<count]))
                    return count
                }
                return buffer
            }
            let buffer = if let filler { try await withTaskExecutorPreference(filler) { try filled() } } else { try filled() }
            try await writer.write(buffer)
            position = chunk.upperBound
            sent += UInt64(count)
            // A write to a writable channel does not suspend; yielding lets the event loop serve its
            // other connections between chunks instead of streaming one fast client to the end.
            await Task.yield()
        }
    }

    /// `text` without the spaces and tabs around it (HTTP's optional whitespace); Foundation's
    /// trimming is costly enough to show in a profile of per-request header parsing.
    static func withoutBlanks(_ text: Substring) -> Substring {
        var trimmed = text.drop { $0 == " " || $0 == "\t" }
        while let last = trimmed.last, last == " " || last == "\t" { trimmed.removeLast() }
        return trimmed
    }

    /// `If-None-Match`: `*` or a list of entity tags, compared weakly (RFC 9110 §13.1.2).
    static func matches(_ header: String, etag: String) -> Bool {
        header.split(separator: ",").contains { candidate in
            var tag = Self.withoutBlanks(candidate)
            if tag == "*" { return true }
            if tag.hasPrefix("W/") { tag.removeFirst(2) }
            return tag == etag
        }
    }
}
