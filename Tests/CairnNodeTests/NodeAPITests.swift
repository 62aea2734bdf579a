import CairnAudit
@testable import CairnAuth
@testable import CairnNode
import CairnStore
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

/// The API in process (Hummingbird's router test client): statuses, headers and bodies per RFC 9110.
@Suite struct NodeAPITests {
    final class Fixture: Sendable {
        let root: String
        let api: NodeAPI
        let key = NodeKey(privateKey: Curve25519.Signing.PrivateKey())
        let blob: [UInt8]
        let digest: BlobDigest
        let otherDigest: BlobDigest

        init(maxUploadBytes: UInt64 = 1 << 20) async throws {
            root = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-node-\(UUID().uuidString)").path
            let store = try BlobStore.initialize(at: root, frameSize: 65_536)
            try store.createDataset(id: "ct", title: "CT", deidPolicy: .accept)
            try store.createDataset(id: "mr", title: "MR", deidPolicy: .reject)
            try store.createDataset(id: "secret", title: "Other", deidPolicy: .accept)
            var rng = SystemRandomNumberGenerator()
            // Compressible but not trivial: 300 kB over five frames.
            blob = (0..<300_000).map { i in UInt8(truncatingIfNeeded: i / 7) ^ (UInt8.random(in: 0...3, using: &rng)) }
            digest = try store.put(bytes: blob, dataset: "ct").blob.digest
            otherDigest = try store.put(bytes: Array("only in secret".utf8), dataset: "secret").blob.digest
            var config = NodeConfig()
            config.nodeID = "node-a"
            config.maxUploadBytes = maxUploadBytes
            config.diskLowWaterBytes = 0
            config.maxRanges = 8
            let metrics = NodeMetrics()
            let verifier = try await TokenVerifier(ownKey: key, audience: "node-a", trusted: [], clockSkew: 60)
            api = NodeAPI(store: store, verifier: verifier,
                          audit: AuditTrail(store: store, interval: .seconds(1), metrics: metrics, logger: Logger(label: "test")),
                          metrics: metrics, config: config)
        }

        func token(datasets: [String] = ["ct"], scope: Scope = .read) async throws -> String {
            try await TokenIssuer(key: key).issue(subject: "job-1", datasets: datasets, scopes: [scope], audience: "node-a",
                                                  ttl: 600).token
        }

        func auth(_ token: String, _ extra: HTTPFields = [:]) -> HTTPFields {
            var fields = extra
            fields[.authorization] = "Bearer " + token
            return fields
        }

        func run(_ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void) async throws {
            try await Application(router: api.router()).test(.router, body)
            api.audit.flush()
        }

        deinit { try? FileManager.default.removeItem(atPath: root) }
    }

    static func bytes(_ buffer: ByteBuffer) -> [UInt8] { Array(buffer.readableBytesView) }

    @Test func wholeRangesAndConditionals() async throws {
        let f = try await Fixture()
        let token = try await f.token()
        let uri = "/v1/blobs/\(f.digest)"
        try await f.run { client in
            try await client.execute(uri: uri, method: .get, headers: f.auth(token)) { response in
                #expect(response.status == .ok)
                #expect(Self.bytes(response.body) == f.blob)
                #expect(response.headers[.eTag] == "\"\(f.digest)\"")
                #expect(response.headers[.acceptRanges] == "bytes")
                #expect(response.headers[.contentLength] == "300000")
            }
            try await client.execute(uri: uri, method: .get, headers: f.auth(token, [.range: "bytes=70000-70009"])) { response in
                #expect(response.status == .partialContent)
                #expect(response.headers[.contentRange] == "bytes 70000-70009/300000")
                #expect(Self.bytes(response.body) == Array(f.blob[70000..<70010]))
            }
            try await client.execute(uri: uri, method: .get, headers: f.auth(token, [.range: "bytes=-5"])) { response in
                #expect(Self.bytes(response.body) == Array(f.blob.suffix(5)))
            }
            try await client.execute(uri: uri, method: .get, headers: f.auth(token, [.range: "bytes=0-1,100-101"])) { response in
                #expect(response.status == .partialContent)
                let type = response.headers[.contentType] ?? ""
                #expect(type.hasPrefix("multipart/byteranges; boundary="))
                let boundary = String(type.dropFirst("multipart/byteranges; boundary=".count))
                let text = String(decoding: Self.bytes(response.body), as: UTF8.self)
                #expect(text.contains("--\(boundary)\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 0-1/300000\r\n\r\n"))
                #expect(text.hasSuffix("\r\n--\(boundary)--\r\n"))
                #expect(Int(response.headers[.contentLength] ?? "") == response.body.readableBytes)
            }
            try await client.execute(uri: uri, method: .get, headers: f.auth(token, [.range: "bytes=300000-"])) { response in
                #expect(response.status == .rangeNotSatisfiable)
                #expect(response.headers[.contentRange] == "bytes */300000")
            }
            let many = "bytes=" + (0..<10_000).map { "\($0 * 2)-\($0 * 2)" }.joined(separator: ",")
            try await client.execute(uri: uri, method: .get, headers: f.auth(token, [.range: many])) { response in
                #expect(response.status == .rangeNotSatisfiable)
            }
            try await client.execute(uri: uri, method: .get, headers: f.auth(token, [.range: "bytes=zz"])) { response in
                #expect(response.status == .ok)
                #expect(response.body.readableBytes == 300_000)
            }
            try await client.execute(uri: uri, method: .get, headers: f.auth(token, [.ifNoneMatch: "\"\(f.digest)\""])) { response in
                #expect(response.status == .notModified)
                #expect(response.body.readableBytes == 0)
            }
            try await client.execute(uri: uri, method: .get,
                                     headers: f.auth(token, [.range: "bytes=0-9", .ifRange: "\"\(f.digest)\""])) { response in
                #expect(response.status == .partialContent)
            }
            try await client.execute(uri: uri, method: .get,
                                     headers: f.auth(token, [.range: "bytes=0-9", .ifRange: "\"sha256:other\""])) { response in
                #expect(response.status == .ok)
                #expect(response.body.readableBytes == 300_000)
            }
            // Accepting zstd, a whole read gets the stored file as it is; a ranged one never does.
            let stored = try Array(Data(contentsOf: URL(fileURLWithPath: f.api.store.path(of: f.digest))))
            try await client.execute(uri: uri, method: .get, headers: f.auth(token, [.acceptEncoding: "gzip, zstd;q=0.9"])) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentEncoding] == "zstd")
                #expect(response.headers[.eTag] == "\"\(f.digest)+zstd\"")
                #expect(Self.bytes(response.body) == stored)
            }
            try await client.execute(uri: uri, method: .get,
                                     headers: f.auth(token, [.acceptEncoding: "zstd", .range: "bytes=0-9"])) { response in
                #expect(response.headers[.contentEncoding] == nil)
                #expect(Self.bytes(response.body) == Array(f.blob[0..<10]))
            }
            try await client.execute(uri: uri, method: .get, headers: f.auth(token, [.acceptEncoding: "zstd;q=0"])) { response in
                #expect(response.headers[.contentEncoding] == nil)
                #expect(Self.bytes(response.body) == f.blob)
            }
            try await client.execute(uri: uri, method: .head, headers: f.auth(token, [.range: "bytes=10-19"])) { response in
                #expect(response.status == .partialContent)
                #expect(response.headers[.contentLength] == "10")
                #expect(response.body.readableBytes == 0)
            }
        }
        let records = try Self.audit(f)
        #expect(records.contains { $0.event.action == "read" && $0.event.range == "70000-70009" && $0.event.bytes == 10 })
        #expect(try f.api.store.verifyAudit().firstBad == nil)
    }

    @Test func denials() async throws {
        let f = try await Fixture()
        let reader = try await f.token(datasets: ["mr"])
        let uri = "/v1/blobs/\(f.digest)"
        try await f.run { client in
            try await client.execute(uri: uri, method: .get) { response in
                #expect(response.status == .unauthorized)
                let json = try JSONSerialization.jsonObject(with: Data(Self.bytes(response.body))) as? [String: String]
                #expect(json?["error"] == "unauthorized")
            }
            try await client.execute(uri: uri, method: .get, headers: [.authorization: "Bearer a.b.c"]) { response in
                #expect(response.status == .unauthorized)
            }
            // A token for another dataset: the blob is not found through it.
            try await client.execute(uri: uri, method: .get, headers: f.auth(reader)) { response in
                #expect(response.status == .notFound)
            }
            try await client.execute(uri: "/v1/blobs/\(f.otherDigest)", method: .get, headers: f.auth(try await f.token())) { response in
                #expect(response.status == .notFound)
            }
            for bad in ["sha256:XYZ", "..%2F..%2Findex.sqlite", "sha256:" + String(repeating: "0", count: 63)] {
                try await client.execute(uri: "/v1/blobs/\(bad)", method: .get, headers: f.auth(reader)) { response in
                    #expect(response.status == .badRequest, "\(bad)")
                }
            }
            try await client.execute(uri: "/v1/datasets/ct", method: .get, headers: f.auth(reader)) { response in
                #expect(response.status == .forbidden)
            }
            try await client.execute(uri: "/v1/datasets/mr/instances", method: .post, headers: f.auth(reader),
                                     body: ByteBuffer(string: "x")) { response in
                #expect(response.status == .forbidden)
            }
            try await client.execute(uri: "/healthz", method: .get) { response in #expect(response.status == .ok) }
            // Metrics need a monitor token: without one a 401 (audited); with one the counters.
            try await client.execute(uri: "/metrics", method: .get) { response in #expect(response.status == .unauthorized) }
            try await client.execute(uri: "/metrics", method: .get, headers: f.auth(reader)) { response in
                #expect(response.status == .unauthorized)
            }
            let monitor = try await f.token(datasets: [], scope: .monitor)
            try await client.execute(uri: "/metrics", method: .get, headers: f.auth(monitor)) { response in
                let text = String(decoding: Self.bytes(response.body), as: UTF8.self)
                #expect(text.contains("cairn_http_requests_total{route=\"/v1/blobs/{digest}\",method=\"GET\",status=\"401\"} 2"))
            }
        }
        let denials = try Self.audit(f).filter { $0.event.action == "deny" }
        #expect(denials.count == 11)
        #expect(denials.contains { $0.event.status == 401 && $0.event.actor == "-" })
    }

    @Test func datasetsAndEntries() async throws {
        let f = try await Fixture()
        let token = try await f.token(datasets: ["ct", "mr"])
        for i in 0..<25 { _ = try f.api.store.put(bytes: Array("entry \(i)".utf8), dataset: "ct", name: "e\(i)") }
        try await f.run { client in
            try await client.execute(uri: "/v1/datasets", method: .get, headers: f.auth(token)) { response in
                let json = try JSONSerialization.jsonObject(with: Data(Self.bytes(response.body))) as? [String: Any]
                let ids = (json?["datasets"] as? [[String: Any]])?.compactMap { $0["id"] as? String }
                #expect(ids == ["ct", "mr"])
            }
            var lines: [[String: Any]] = []
            try await client.execute(uri: "/v1/datasets/ct/entries", method: .get, headers: f.auth(token)) { response in
                #expect(response.headers[.contentType] == "application/x-ndjson")
                lines = String(decoding: Self.bytes(response.body), as: UTF8.self).split(separator: "\n").map {
                    try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
                }
            }
            #expect(lines.count == 26)
            let digests = lines.map { $0["digest"] as! String }
            #expect(digests == digests.sorted())
            try await client.execute(uri: "/v1/datasets/ct/entries?after=\(digests[9])&limit=5", method: .get,
                                     headers: f.auth(token)) { response in
                let resumed = String(decoding: Self.bytes(response.body), as: UTF8.self).split(separator: "\n")
                #expect(resumed.count == 5)
                #expect(resumed.first?.contains(digests[10]) == true)
            }
            try await client.execute(uri: "/v1/datasets/ct/snapshots/latest", method: .get, headers: f.auth(token)) { response in
                #expect(response.status == .notFound)
            }
        }
    }

    @Test func uploads() async throws {
        let f = try await Fixture(maxUploadBytes: 1000)
        let ingest = try await f.token(datasets: ["ct", "mr"], scope: .ingest)
        let body = Array("not DICOM, any file is accepted".utf8)
        try await f.run { client in
            for _ in 0..<2 {
                try await client.execute(uri: "/v1/datasets/ct/instances", method: .post, headers: f.auth(ingest),
                                         body: ByteBuffer(bytes: body)) { response in
                    #expect(response.status == .created)
                    let json = try JSONSerialization.jsonObject(with: Data(Self.bytes(response.body))) as? [String: Any]
                    #expect(json?["digest"] as? String == BlobDigest.of(body).description)
                }
            }
            try await client.execute(uri: "/v1/datasets/ct/instances", method: .post, headers: f.auth(ingest),
                                     body: ByteBuffer(bytes: [UInt8](repeating: 1, count: 1001))) { response in
                #expect(response.status == .contentTooLarge)
            }
            try await client.execute(uri: "/v1/datasets/nope/instances", method: .post,
                                     headers: f.auth(try await f.token(datasets: ["nope"], scope: .ingest)),
                                     body: ByteBuffer(bytes: body)) { response in
                #expect(response.status == .notFound)
            }
            // A read token cannot upload.
            try await client.execute(uri: "/v1/datasets/ct/instances", method: .post, headers: f.auth(try await f.token()),
                                     body: ByteBuffer(bytes: body)) { response in
                #expect(response.status == .forbidden)
            }
        }
        #expect(try f.api.store.list(dataset: "ct").contains { $0.record.digest == BlobDigest.of(body) })
        #expect(try FileManager.default.contentsOfDirectory(atPath: f.root + "/tmp").isEmpty)
    }

    static func audit(_ f: Fixture) throws -> [AuditRecord] {
        var records: [AuditRecord] = []
        try f.api.store.auditRecords { records += $0 }
        return records
    }
}
