import AsyncHTTPClient
import CairnFoundation
import Crypto
import Foundation
import Glibc
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// What an object store refused or failed to do, with the operation, bucket and key.
public enum ObjectStoreError: Error, CustomStringConvertible, Sendable, Equatable {
    case missingCredentials
    case invalidConfiguration(String)
    case notFound(op: String, bucket: String, key: String)
    /// The server answered with an error status; `code` is S3's error code (`AccessDenied`, `XAmzContentSHA256Mismatch`…).
    case status(op: String, bucket: String, key: String, status: Int, code: String?)
    case transport(op: String, bucket: String, key: String, reason: String)
    /// The answer was not what was asked for: a short body, a PUT whose ETag is not our MD5.
    case integrity(op: String, bucket: String, key: String, reason: String)

    public var description: String {
        switch self {
        case .missingCredentials:
            return "S3 credentials missing: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment"
        case .invalidConfiguration(let reason): return reason
        case .notFound(let op, let bucket, let key): return "\(op) s3://\(bucket)/\(key): no such object"
        case .status(let op, let bucket, let key, let status, let code):
            return "\(op) s3://\(bucket)/\(key): HTTP \(status)\(code.map { " \($0)" } ?? "")"
        case .transport(let op, let bucket, let key, let reason): return "\(op) s3://\(bucket)/\(key): \(reason)"
        case .integrity(let op, let bucket, let key, let reason): return "\(op) s3://\(bucket)/\(key): \(reason)"
        }
    }
}

/// An object's size and ETag, as HEAD or a listing reports them.
public struct ObjectInfo: Sendable, Equatable {
    public var key: String
    public var size: UInt64
    public var etag: String?
    public var lastModified: Date?
}

/// A small blocking S3 client (path-style requests, SigV4) for one bucket, over AsyncHTTPClient on
/// event loops of its own. Blocking, because the blob reader and the commit path are synchronous;
/// its own loops, so a caller blocked on an answer never holds a loop the answer needs (the node
/// server's loops are NIO's shared ones). Call it from any thread but its own loops.
public final class S3Client: Sendable {
    public let endpoint: String
    public let bucket: String
    public let region: String
    private let host: String
    private let signer: SigV4Signer
    private let group: MultiThreadedEventLoopGroup
    private let http: HTTPClient
    /// The most one answer may carry (a ByteBuffer's limit).
    static let largestBody = UInt64(UInt32.max)
    /// The longest one attempt may take (a 4 GiB PUT at ~40 MB/s).
    public static let requestDeadline = TimeAmount.seconds(120)
    /// The longest one attempt of a small request (HEAD, DELETE) made under the index's write
    /// lock may take: every other writer waits for it. Three attempts: ~30 s at worst.
    public static let heldLockDeadline = TimeAmount.seconds(10)
    /// Attempts per request: transport errors and 5xx answers are retried (every request here is
    /// idempotent: keys are content addresses).
    static let attempts = 3

    public init(endpoint: String, region: String, bucket: String, credentials: S3Credentials,
                maxConnections: Int = 32) throws(ObjectStoreError) {
        let (scheme, host) = try Self.parseEndpoint(endpoint)
        try Self.validateBucketName(bucket)
        self.endpoint = scheme + "://" + host
        self.host = host
        self.bucket = bucket
        self.region = region
        self.signer = SigV4Signer(credentials: credentials, region: region)
        group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        var configuration = HTTPClient.Configuration(timeout: .init(connect: .seconds(5), read: .seconds(60)))
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: maxConnections)
        configuration.decompression = .disabled
        http = HTTPClient(eventLoopGroupProvider: .shared(group), configuration: configuration)
    }

    /// Without blocking: the last reference may go on one of this client's own loops (a GET
    /// fetched ahead completes after its reader is gone), where a synchronous shutdown traps.
    deinit {
        let group = group
        http.shutdown(queue: .global()) { _ in group.shutdownGracefully(queue: .global()) { _ in } }
    }

    /// `http(s)://HOST[:PORT]` and nothing more: the scheme and the Host header's value.
    public static func parseEndpoint(_ endpoint: String) throws(ObjectStoreError) -> (scheme: String, host: String) {
        guard let url = URL(string: endpoint), let scheme = url.scheme, ["http", "https"].contains(scheme),
              let hostName = url.host, !hostName.isEmpty, url.path.isEmpty || url.path == "/", url.query == nil,
              url.user == nil else {
            throw .invalidConfiguration("s3_endpoint '\(endpoint)' must be http(s)://HOST[:PORT]")
        }
        // The Host header AsyncHTTPClient sends, which is what is signed: no default port, IPv6 in brackets.
        let host = hostName.contains(":") && !hostName.hasPrefix("[") ? "[\(hostName)]" : hostName
        let port = url.port.flatMap { (scheme == "http" && $0 == 80) || (scheme == "https" && $0 == 443) ? nil : $0 }
        return (scheme, host + (port.map { ":\($0)" } ?? ""))
    }

    /// S3's bucket naming rules (3-63 of a-z 0-9 . -, starting and ending alphanumeric).
    public static func validateBucketName(_ bucket: String) throws(ObjectStoreError) {
        let allowed = bucket.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2E || $0 == 0x2D }
        guard allowed, (3...63).contains(bucket.utf8.count), bucket.first != "-", bucket.first != ".",
              bucket.last != "-", bucket.last != "." else {
            throw .invalidConfiguration("bucket name '\(bucket)' must be 3-63 of a-z 0-9 . - (S3's rules)")
        }
    }

    // MARK: - Operations

    /// Creates the bucket unless it exists (a HEAD first: keys without the right to create
    /// buckets can use one made for them).
    public func createBucketIfMissing() throws(ObjectStoreError) {
        do {
            _ = try send("HEAD", key: nil, op: "HEAD bucket", accept: [200])
            return
        } catch .notFound {
        }
        let response = try send("PUT", key: nil, op: "create bucket", accept: [200, 409])
        if response.status.code == 409, Self.errorCode(response) != "BucketAlreadyOwnedByYou" {
            throw .status(op: "create bucket", bucket: bucket, key: "", status: 409, code: Self.errorCode(response))
        }
    }

    /// The object's size and ETag, or nil when there is none.
    /// `deadline` bounds each attempt (callers holding the index's write lock pass
    /// `heldLockDeadline`, so a stalled server holds other writers up for seconds, not minutes).
    public func head(_ key: String, deadline: TimeAmount = requestDeadline) throws(ObjectStoreError) -> ObjectInfo? {
        let response = try send("HEAD", key: key, op: "HEAD", accept: [200, 404], deadline: deadline)
        if response.status.code == 404 { return nil }
        guard let length = response.headers.first(name: "content-length").flatMap({ UInt64($0) }) else {
            throw .integrity(op: "HEAD", bucket: bucket, key: key, reason: "no Content-Length in the answer")
        }
        return ObjectInfo(key: key, size: length, etag: response.headers.first(name: "etag").map(Self.unquote))
    }

    /// Reads bytes `range` of the object into `destination` (exactly the range's length) with one
    /// ranged GET; a short or long answer is an error.
    public func get(_ key: String, range: Range<UInt64>, objectSize: UInt64? = nil,
                    into destination: UnsafeMutableRawBufferPointer) throws(ObjectStoreError) {
        precondition(destination.count == range.count, "destination must fit the range")
        if range.isEmpty { return }
        // A 200 is the whole object: `fetch` accepts one only when the range starts at 0 and has its length.
        let body: ByteBuffer
        do { body = try Self.block(on: fetch(key, range: range, objectSize: objectSize)) } catch let error as ObjectStoreError { throw error } catch {
            throw .transport(op: "GET", bucket: bucket, key: key, reason: "\(error)")
        }
        body.withUnsafeReadableBytes { destination.copyMemory(from: $0) }
    }

    /// The last `count` bytes of the object (a suffix range: no size needed), or fewer when the object is smaller.
    public func getSuffix(_ key: String, count: UInt64, objectSize: UInt64? = nil) throws(ObjectStoreError) -> [UInt8] {
        let response = try send("GET", key: key, headers: [("range", "bytes=-\(count)")], op: "GET", accept: [200, 206],
                                maxBody: Int(clamping: min(max(count, 64 << 10), Self.largestBody)))
        let body = response.body ?? ByteBuffer()
        guard UInt64(body.readableBytes) <= count else {
            throw .integrity(op: "GET", bucket: bucket, key: key, reason: "asked for the last \(count) bytes, got \(body.readableBytes)")
        }
        try Self.checkSize(response, bodyBytes: body.readableBytes, expected: objectSize, bucket: bucket, key: key)
        return Array(body.readableBytesView)
    }

    /// Uploads `size` bytes of the open file `descriptor` (from offset 0) as the object. The
    /// signed SHA-256 makes the server refuse a body damaged on the way; the MD5 it answers as
    /// ETag must be ours. Returns when the object is stored.
    /// What a PUT did.
    public enum PutOutcome: Sendable, Equatable {
        case stored
        /// `ifAbsent` and an object was already there: nothing was written.
        case alreadyExists
    }

    /// With `ifAbsent`, the PUT is conditional (`If-None-Match: *`): an object already under the
    /// key, whoever wrote it, is never replaced, however late an attempt lands.
    @discardableResult
    public func put(_ key: String, descriptor: Int32, size: UInt64, sha256Hex: String, md5: [UInt8],
                    ifAbsent: Bool = false) throws(ObjectStoreError) -> PutOutcome {
        let chunkSize = 1 << 20
        let loop = group.next(), bucket = bucket
        let body = HTTPClient.Body.stream(contentLength: Int64(size)) { writer in
            @Sendable func next(_ offset: UInt64) -> EventLoopFuture<Void> {
                if offset >= size { return loop.makeSucceededVoidFuture() }
                let count = Int(min(UInt64(chunkSize), size - offset))
                var buffer = ByteBufferAllocator().buffer(capacity: count)
                var failure: Int32 = 0
                let read = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { raw in
                    // pread may return less than asked (signals, network filesystems): go on until done.
                    var done = 0
                    while done < count, let base = raw.baseAddress {
                        let n = pread(descriptor, base + done, count - done, off_t(offset) + off_t(done))
                        if n > 0 { done += n; continue }
                        if n < 0, errno == EINTR { continue }
                        failure = n < 0 ? errno : 0
                        break
                    }
                    return done
                }
                guard read == count else {
                    let why = failure != 0 ? String(cString: strerror(failure)) : "end of file"
                    return loop.makeFailedFuture(ObjectStoreError.transport(
                        op: "PUT", bucket: bucket, key: key, reason: "reading the staged file at \(offset + UInt64(read)): \(why)"))
                }
                return writer.write(.byteBuffer(buffer)).flatMap { next(offset + UInt64(count)) }
            }
            return next(0)
        }
        let md5Base64 = Data(md5).base64EncodedString()
        let headers = [("content-md5", md5Base64), ("content-length", String(size))] + (ifAbsent ? [("if-none-match", "*")] : [])
        let response = try send("PUT", key: key, headers: headers, payloadHash: sha256Hex, body: body, op: "PUT",
                                accept: ifAbsent ? [200, 412] : [200])
        if response.status.code == 412 { return .alreadyExists }
        let etag = response.headers.first(name: "etag").map(Self.unquote)
        guard etag == Hex.encode(md5) else {
            throw .integrity(op: "PUT", bucket: bucket, key: key, reason: "the stored object's ETag \(etag ?? "(none)") is not the MD5 sent")
        }
        return .stored
    }

    /// A small object whole (at most `limit` bytes), or nil when there is none.
    public func getSmall(_ key: String, limit: Int = 4096) throws(ObjectStoreError) -> [UInt8]? {
        do {
            let response = try send("GET", key: key, op: "GET", accept: [200], maxBody: limit)
            return Array((response.body ?? ByteBuffer()).readableBytesView)
        } catch .notFound {
            return nil
        }
    }

    /// Stores a small object from memory.
    public func put(_ key: String, bytes: [UInt8]) throws(ObjectStoreError) {
        let md5 = Array(Insecure.MD5.hash(data: bytes))
        let response = try send("PUT", key: key, headers: [("content-md5", Data(md5).base64EncodedString()), ("content-length", String(bytes.count))],
                                payloadHash: Hex.encode(SHA256.hash(data: bytes)), body: .bytes(bytes), op: "PUT", accept: [200])
        guard response.headers.first(name: "etag").map(Self.unquote) == Hex.encode(md5) else {
            throw .integrity(op: "PUT", bucket: bucket, key: key, reason: "the stored object's ETag is not the MD5 sent")
        }
    }

    /// Removes the object; removing one that is not there is not an error (S3 answers 204 either way).
    public func delete(_ key: String, deadline: TimeAmount = requestDeadline) throws(ObjectStoreError) {
        _ = try send("DELETE", key: key, op: "DELETE", accept: [200, 204, 404], deadline: deadline)
    }

    /// Every object under `prefix`, a page (up to 1000) at a time, through `body`.
    public func list(prefix: String, _ body: ([ObjectInfo]) throws -> Void) throws {
        var token: String?
        repeat {
            var query = [("list-type", "2"), ("prefix", prefix)]
            if let token { query.append(("continuation-token", token)) }
            let response = try send("GET", key: nil, query: query, op: "LIST", accept: [200], maxBody: 16 << 20)
            let page = ListPage(xml: String(buffer: response.body ?? ByteBuffer()))
            guard page.complete else {
                throw ObjectStoreError.integrity(op: "LIST", bucket: bucket, key: prefix, reason: "a listing entry without a key or size")
            }
            try body(page.objects)
            guard page.truncated else { break }
            guard let next = page.nextToken, next != token else {
                throw ObjectStoreError.integrity(op: "LIST", bucket: bucket, key: prefix,
                                                 reason: "a truncated listing page without a new continuation token")
            }
            token = next
        } while token != nil
    }

    // MARK: - Requests

    private func send(_ method: String, key: String?, query: [(String, String)] = [], headers extra: [(String, String)] = [],
                      payloadHash: String = SigV4Signer.emptyPayloadHash, body: HTTPClient.Body? = nil,
                      op: String, accept: Set<Int>, maxBody: Int = 1 << 20,
                      deadline: TimeAmount = requestDeadline) throws(ObjectStoreError) -> HTTPClient.Response {
        let future = execute(method, key: key, query: query, headers: extra, payloadHash: payloadHash, body: body, op: op,
                             accept: accept, maxBody: maxBody, deadline: deadline)
        do { return try Self.block(on: future) } catch let error as ObjectStoreError { throw error } catch {
            throw .transport(op: op, bucket: bucket, key: key ?? "", reason: "\(error)")
        }
    }

    /// One request, signed afresh for each attempt; transport errors and 5xx answers are retried
    /// after 100, then 200 ms. Fails with an `ObjectStoreError` only.
    private func execute(_ method: String, key: String?, query: [(String, String)] = [], headers extra: [(String, String)] = [],
                         payloadHash: String = SigV4Signer.emptyPayloadHash, body: HTTPClient.Body? = nil,
                         op: String, accept: Set<Int>, maxBody: Int = 1 << 20, deadline: TimeAmount = requestDeadline,
                         attempt: Int = 0) -> EventLoopFuture<HTTPClient.Response> {
        let loop = group.next()
        let path = "/" + bucket + (key.map { "/" + SigV4Signer.encode($0, keepSlash: true) } ?? "")
        let queryText = query.map { "\(SigV4Signer.encode($0.0))=\(SigV4Signer.encode($0.1))" }.joined(separator: "&")
        let signedHeaders = [("host", host)] + extra.filter { $0.0 != "content-length" }
        let authorization = signer.sign(method: method, path: path, query: query, headers: signedHeaders, payloadHash: payloadHash)
        var headers = HTTPHeaders()
        for (name, value) in extra + authorization { headers.add(name: name, value: value) }
        let bucket = bucket, name = key ?? ""
        let request: HTTPClient.Request
        do {
            request = try HTTPClient.Request(url: endpoint + path + (queryText.isEmpty ? "" : "?" + queryText),
                                             method: HTTPMethod(rawValue: method), headers: headers, body: body)
        } catch {
            return loop.makeFailedFuture(ObjectStoreError.transport(op: op, bucket: bucket, key: name, reason: "\(error)"))
        }
        let promise = loop.makePromise(of: HTTPClient.Response.self)
        let retry: @Sendable (ObjectStoreError) -> Void = { error in
            guard attempt + 1 < Self.attempts else { return promise.fail(error) }
            // 100 then 200 ms, with full jitter so that many readers retrying do not arrive together.
            loop.scheduleTask(in: .milliseconds(Int64.random(in: 50...(100 << Int64(attempt))))) {
                self.execute(method, key: key, query: query, headers: extra, payloadHash: payloadHash, body: body, op: op,
                             accept: accept, maxBody: maxBody, deadline: deadline, attempt: attempt + 1).cascade(to: promise)
            }
        }
        // Bodies are collected up to what was asked for (error documents and listing pages: 1 MiB):
        // a server sending more costs nothing beyond that.
        // A whole attempt, however slowly the server trickles, ends within `deadline`.
        http.execute(request: request, delegate: ResponseAccumulator(request: request, maxBodySize: maxBody),
                     deadline: .now() + deadline).futureResult.whenComplete { result in
            switch result {
            case .failure(let error):
                retry(.transport(op: op, bucket: bucket, key: name, reason: "\(error)"))
            case .success(let response):
                let status = Int(response.status.code)
                if accept.contains(status) { return promise.succeed(response) }
                // A missing bucket is not a missing object: the store's blobs are not gone, its bucket is unreachable.
                if status == 404, Self.errorCode(response) != "NoSuchBucket" {
                    return promise.fail(ObjectStoreError.notFound(op: op, bucket: bucket, key: name))
                }
                let error = ObjectStoreError.status(op: op, bucket: bucket, key: name, status: status, code: Self.errorCode(response))
                let transient = status >= 500 || status == 429 || (status == 400 && Self.errorCode(response) == "RequestTimeout")
                if transient { retry(error) } else { promise.fail(error) }
            }
        }
        return promise.futureResult
    }

    /// Starts a ranged GET of `range` (non-empty) without waiting for it: the bytes, exactly the
    /// range's length, or an `ObjectStoreError`. For readers that fetch ahead of what they send.
    /// With `objectSize`, the object's size as the answer states it (`Content-Range: …/TOTAL`)
    /// must be that: a replaced or truncated object is an error, not other bytes.
    public func fetch(_ key: String, range: Range<UInt64>, objectSize: UInt64? = nil) -> EventLoopFuture<ByteBuffer> {
        let bucket = bucket
        guard range.count <= Self.largestBody else {
            return group.next().makeFailedFuture(ObjectStoreError.integrity(
                op: "GET", bucket: bucket, key: key, reason: "a read of \(range.count) bytes is more than one request carries (\(Self.largestBody))"))
        }
        return execute("GET", key: key, headers: [("range", "bytes=\(range.lowerBound)-\(range.upperBound - 1)")], op: "GET",
                       accept: [200, 206], maxBody: Int(max(range.count, 64 << 10))).flatMapThrowing { response in
            let body = response.body ?? ByteBuffer()
            guard body.readableBytes == range.count, response.status.code == 206 || range.lowerBound == 0 else {
                throw ObjectStoreError.integrity(op: "GET", bucket: bucket, key: key,
                                                 reason: "asked for \(range.count) bytes at \(range.lowerBound), got \(body.readableBytes) (HTTP \(response.status.code))")
            }
            try Self.checkSize(response, bodyBytes: body.readableBytes, expected: objectSize, bucket: bucket, key: key)
            return body
        }
    }

    /// Waits for `future` on the calling thread. Not `wait()`, which NIO refuses on any event
    /// loop: the node's response bodies run on the server's loops, and blocking one of those on an
    /// answer that arrives on this client's own loops cannot deadlock.
    private static func block<T: Sendable>(on future: EventLoopFuture<T>) throws -> T {
        let done = DispatchSemaphore(value: 0)
        let outcome = Mutex<Result<T, any Error>?>(nil)
        future.whenComplete { result in
            outcome.withLock { $0 = result }
            done.signal()
        }
        done.wait()
        guard let result = outcome.withLock({ $0 }) else {
            throw ObjectStoreError.transport(op: "wait", bucket: "", key: "", reason: "the request completed without a result")
        }
        return try result.get()
    }

    /// The object's whole size from a 206's `Content-Range: bytes A-B/TOTAL`, or a 200's body.
    static func checkSize(_ response: HTTPClient.Response, bodyBytes: Int, expected: UInt64?, bucket: String, key: String) throws(ObjectStoreError) {
        guard let expected else { return }
        let actual: UInt64?
        if response.status.code == 206 {
            actual = response.headers.first(name: "content-range").flatMap { $0.split(separator: "/").last }.flatMap { UInt64($0) }
        } else {
            actual = UInt64(bodyBytes)
        }
        guard actual == expected else {
            throw .integrity(op: "GET", bucket: bucket, key: key,
                             reason: "the object holds \(actual.map(String.init) ?? "an unstated number of") bytes, the index says \(expected)")
        }
    }

    static func unquote(_ etag: String) -> String {
        etag.count >= 2 && etag.hasPrefix("\"") && etag.hasSuffix("\"") ? String(etag.dropFirst().dropLast()) : etag
    }

    /// S3's `<Code>` from an error answer's XML.
    static func errorCode(_ response: HTTPClient.Response) -> String? {
        guard let body = response.body else { return nil }
        return XMLText.first("Code", in: String(buffer: body))
    }
}

/// One page of a ListObjectsV2 answer: the few elements it needs, read without an XML library
/// (the answer's shape is fixed and keys here are hex and slashes).
struct ListPage {
    var objects: [ObjectInfo] = []
    var truncated = false
    var nextToken: String?
    /// False when a `<Contents>` entry lacked its key or size: a listing that drops entries must not pass for whole.
    var complete = true

    init(xml: String) {
        truncated = XMLText.first("IsTruncated", in: xml) == "true"
        nextToken = XMLText.first("NextContinuationToken", in: xml)
        for contents in XMLText.all("Contents", in: xml) {
            guard let key = XMLText.first("Key", in: contents), let size = XMLText.first("Size", in: contents).flatMap({ UInt64($0) }) else {
                complete = false
                continue
            }
            let modified = XMLText.first("LastModified", in: contents).flatMap(Self.date)
            objects.append(ObjectInfo(key: key, size: size, etag: XMLText.first("ETag", in: contents).map(S3Client.unquote), lastModified: modified))
        }
    }
}

extension ListPage {
    /// `2026-11-30T09:10:11.123Z`, with or without the fraction.
    static func date(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)
    }
}

enum XMLText {
    static func all(_ element: String, in xml: String) -> [String] {
        var out: [String] = []
        var rest = xml[...]
        while let open = rest.range(of: "<\(element)>"), let close = rest.range(of: "</\(element)>", range: open.upperBound..<rest.endIndex) {
            out.append(unescape(String(rest[open.upperBound..<close.lowerBound])))
            rest = rest[close.upperBound...]
        }
        return out
    }

    static func first(_ element: String, in xml: String) -> String? {
        guard let open = xml.range(of: "<\(element)>"), let close = xml.range(of: "</\(element)>", range: open.upperBound..<xml.endIndex) else {
            return nil
        }
        return unescape(String(xml[open.upperBound..<close.lowerBound]))
    }

    static func unescape(_ text: String) -> String {
        text.replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&apos;", with: "'")
            .replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&amp;", with: "&")
    }
}
