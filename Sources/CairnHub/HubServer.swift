import CairnAuth
import CairnFoundation
import CairnHTTP
import CairnManifest
import CairnSearch
import Crypto
import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import Synchronization

/// `cairn hub serve`: receives signed snapshots from nodes, keeps the catalogue, answers
/// federated counts and DCAT-AP descriptions (DESIGN.md "Hub HTTP API, v1").
public struct HubServer: Sendable {
    public let index: HubIndex
    public let config: HubConfig
    /// Checks catalogue tokens: signed by the hub's key, `catalog` scope, no other audience.
    let verifier: TokenVerifier
    public let logger: Logger
    /// At most one snapshot body per node, and this many in all, are read and taken in at once; more get a 503.
    let intakeSlots = IntakeSlots(limit: 4)

    /// The audience a token must name, if it names one, to be accepted here.
    public static let audience = "hub"

    public init(index: HubIndex, config: HubConfig, key: NodeKey, logger: Logger) async throws {
        self.index = index
        self.config = config
        verifier = try await TokenVerifier(ownKey: key, audience: Self.audience, trusted: [], clockSkew: config.clockSkewSeconds)
        self.logger = logger
    }

    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/healthz") { _, _ in try Self.json(.object(["status": .string("ok")])) }
        router.put("/v1/nodes/:node/datasets/:id/snapshots/:digest") { request, context in
            try await push(request, context: context)
        }
        router.get("/v1/nodes/:node/datasets/:id/head") { _, context in
            let node = context.parameters.get("node") ?? "", id = context.parameters.get("id") ?? ""
            guard let head = try index.head(node: node, dataset: id) else {
                throw APIError(.notFound, "not_found", "no snapshot of \(node)/\(id) at this hub")
            }
            return try Self.json(.object(["digest": .string(head.digest), "seq": .int(head.seq)]))
        }
        router.get("/v1/catalog/datasets") { request, _ in
            try await authorizeCatalog(request)
            var filters: [String: [String]] = [:]
            for (key, value) in request.uri.queryParameters {
                filters[String(key), default: []].append(String(value))
            }
            let items = try index.catalog(filters: filters, rule: DisclosureRule(minCount: config.minCount))
            return try Self.json(.object(["datasets": .array(items.map(\.json)), "min_count": .int(Int64(config.minCount))]))
        }
        router.get("/v1/catalog/datasets/:id") { request, context in
            try await authorizeCatalog(request)
            let id = context.parameters.get("id") ?? ""
            let items = try index.catalogDataset(id, rule: DisclosureRule(minCount: config.minCount))
            guard !items.isEmpty else { throw APIError(.notFound, "not_found", "no dataset \(id) in the catalogue") }
            return try Self.json(.object(["datasets": .array(items.map(\.json)), "min_count": .int(Int64(config.minCount))]))
        }
        router.get("/v1/catalog/datasets/:id/dcat") { request, context in
            try await authorizeCatalog(request)
            let id = context.parameters.get("id") ?? ""
            guard let item = try index.catalogDataset(id, rule: DisclosureRule(minCount: config.minCount)).first else {
                throw APIError(.notFound, "not_found", "no dataset \(id) in the catalogue")
            }
            // The configured address only: a caller's Host header must not name the catalogue's datasets.
            return try Self.json(DCAT.describe(item, hubURL: config.publicURL ?? ""), contentType: "application/ld+json")
        }
        router.post("/v1/catalog/count") { request, _ in
            try await authorizeCatalog(request)
            let body = try await request.body.collect(upTo: 1 << 20)
            let criteria: CountCriteria
            do {
                let parsed = try JSONValue.parse(Array(body.readableBytesView))
                var values: [String: [String]] = [:]
                for (key, value) in parsed["criteria"]?.object ?? [:] {
                    guard let list = value.array?.compactMap(\.string), list.count == value.array?.count else {
                        throw CatalogError.badCriteria("criterion '\(key)' must be a list of strings")
                    }
                    values[key] = list
                }
                criteria = try CountCriteria(values: values)
            } catch {
                throw APIError(.badRequest, "bad_request", "\(error)")
            }
            return try Self.json(countAnswer(try index.disclosedCount(criteria, rule: DisclosureRule(minCount: config.minCount))))
        }
        router.post("/eucaim/search") { request, _ in
            let actor = try await authorizeSearch(request)
            // One byte over the bound is enough to refuse it, with the 422 every bad query gets.
            let body = try await request.body.prefix(upTo: SearchQuery.maxBodyBytes)
            return try answerSearch(actor: actor) { () throws(SearchQueryError) in try SearchQuery(json: body) }
        }
        router.get("/eucaim/search") { request, _ in
            let actor = try await authorizeSearch(request)
            let parameters = request.uri.queryParameters.map { (String($0.key), String($0.value)) }
            return try answerSearch(actor: actor) { () throws(SearchQueryError) in try SearchQuery(parameters: parameters) }
        }
        return router
    }

    /// `/eucaim/search` takes `Authorization: Secret <search_secret>` (Focus's AUTH_HEADER) or a
    /// `search`-scope token from the hub's key; refusals and answers are logged without the secret.
    func authorizeSearch(_ request: Request) async throws -> String {
        let header = request.headers[.authorization] ?? ""
        if header.count > 7, header.prefix(7).lowercased() == "secret " {
            guard let secret = config.searchSecret, SharedSecret.matches(header.dropFirst(7), secret) else {
                logger.notice("search refused", metadata: ["reason": "wrong or unconfigured search secret"])
                throw APIError.unauthorized("wrong search secret, or none configured on this hub")
            }
            return "focus (search_secret)"
        }
        let grant: AccessGrant
        do { grant = try await verifier.verify(authorization: request.headers[.authorization]) } catch {
            logger.notice("search refused", metadata: ["reason": "\(error)"])
            throw APIError.unauthorized(error.description + "; send a search-scope token from this hub or the configured secret")
        }
        guard grant.allows(.search) else {
            logger.notice("search refused", metadata: ["subject": "\(grant.subject)", "jti": "\(grant.tokenID)", "reason": "no search scope"])
            throw APIError(.forbidden, "forbidden", "the token's scope does not include search")
        }
        return grant.subject
    }

    func answerSearch(actor: String, parse: () throws(SearchQueryError) -> SearchQuery) throws -> Response {
        let query: SearchQuery
        let rows: [SearchRow], ignored: [IgnoredCondition]
        do {
            query = try parse()
            (rows, ignored) = try index.search(query, minCount: config.minCount)
        } catch let error as SearchQueryError {
            logger.info("search refused", metadata: ["actor": "\(actor)", "reason": "\(error.reason.prefix(200))"])
            throw APIError(.unprocessableContent, "bad_query", error.reason)
        }
        logger.info("search", metadata: ["actor": "\(actor)", "query": "\(query.id ?? "-")", "collections": "\(rows.count)"])
        return try Self.json(SearchAnswer.json(rows, ignored: ignored, minCount: config.minCount))
    }

    /// Catalogue routes need a `catalog` token unless `open_catalog` is set; every access and
    /// refusal is logged with the token's subject and id (never the token).
    func authorizeCatalog(_ request: Request) async throws {
        let route = "\(request.method) \(request.uri.path)"
        if config.openCatalog {
            logger.info("catalogue access", metadata: ["route": "\(route)", "subject": "(open catalogue)"])
            return
        }
        let grant: AccessGrant
        do {
            grant = try await verifier.verify(authorization: request.headers[.authorization])
        } catch {
            logger.notice("catalogue access refused", metadata: ["route": "\(route)", "reason": "\(error)"])
            throw APIError(.unauthorized, "unauthorized", error.description
                + "; the catalogue needs a token of scope catalog from this hub (`cairn hub grant --scope catalog`)"
                + " unless the hub's config sets open_catalog")
        }
        guard grant.allows(.catalog) else {
            logger.notice("catalogue access refused", metadata: ["route": "\(route)", "subject": "\(grant.subject)", "jti": "\(grant.tokenID)",
                                                                "reason": "no catalog scope"])
            throw APIError(.forbidden, "forbidden", "the token's scope does not include catalog")
        }
        logger.info("catalogue access", metadata: ["route": "\(route)", "subject": "\(grant.subject)", "jti": "\(grant.tokenID)"])
    }

    /// Per dataset, subjects and studies, for the datasets the disclosure rule releases
    /// (`disclosedCount`): the others are left out, as datasets with no match are, so an answer
    /// never says that one to min_count - 1 people match.
    func countAnswer(_ rows: [(node: String, dataset: String, subjects: Int, studies: Int)]) -> JSONValue {
        var subjects = 0, studies = 0
        let datasets: [JSONValue] = rows.map { row in
            subjects += row.subjects
            studies += row.studies
            return .object(["id": .string(row.dataset), "node": .string(row.node), "subjects": .int(Int64(row.subjects)),
                            "studies": .int(Int64(row.studies))])
        }
        return .object([
            "datasets": .array(datasets),
            "total": .object(["subjects": .int(Int64(subjects)), "studies": .int(Int64(studies))]),
            "min_count": .int(Int64(config.minCount)),
        ])
    }

    func push(_ request: Request, context: BasicRequestContext) async throws -> Response {
        let node = context.parameters.get("node") ?? "", id = context.parameters.get("id") ?? ""
        let digest = context.parameters.get("digest") ?? ""
        // Who is pushing is proved before any of the body is read or a slot is held: a sender that
        // cannot sign as an enrolled node costs nothing, and learns no more whether the node is
        // enrolled than whether its signature was wrong.
        guard let length = request.headers[.contentLength].flatMap({ Int($0) }), length >= 0 else {
            throw APIError(.lengthRequired, "length_required", "a push states its Content-Length")
        }
        guard let keyText = try index.publicKey(of: node), let raw = Base64URL.decode(keyText),
              let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw),
              let name = HTTPField.Name(PushAuthorization.headerName), let header = request.headers[name],
              let authorization = PushAuthorization(header: header),
              authorization.isValid(for: key, node: node, dataset: id, digest: digest, contentLength: length,
                                    now: Int64(Date().timeIntervalSince1970),
                                    skew: Int64(exactly: config.clockSkewSeconds.rounded(.down)) ?? 0)
        else {
            logger.warning("snapshot refused", metadata: ["node": "\(node)", "dataset": "\(id)", "reason": "push not signed by the node"])
            throw APIError(.forbidden, "unauthorized_push",
                           "the push is not signed by an enrolled node's key (\(PushAuthorization.headerName) header, within the clock skew)")
        }
        // What a body may hold is bounded before it is read (a zstd body is at most that much too).
        guard length <= config.maxSnapshotBytes else {
            throw APIError(.contentTooLarge, "too_large", "Content-Length \(length) is over max_snapshot_bytes (\(config.maxSnapshotBytes))")
        }
        guard intakeSlots.acquire(node) else {
            throw APIError(.serviceUnavailable, "busy", "a snapshot of \(node) is being taken in, or \(intakeSlots.limit) are; retry shortly")
        }
        defer { intakeSlots.release(node) }
        let body = try await readSnapshotBody(request)
        do {
            // Intake of a large snapshot takes seconds of CPU and disk: off the server's threads.
            let outcome = try await withCheckedThrowingContinuation { continuation in
                DispatchQueue.global().async { [body] in
                    continuation.resume(with: Result { try index.intake(node: node, dataset: id, claimedDigest: digest, body: body) })
                }
            }
            let head = try index.head(node: node, dataset: id)
            logger.info("snapshot \(outcome == .applied ? "applied" : "already head")",
                        metadata: ["node": "\(node)", "dataset": "\(id)", "seq": "\(head?.seq ?? 0)"])
            return try Self.json(.object(["digest": .string(head?.digest ?? digest), "seq": .int(head?.seq ?? 0),
                                          "applied": .bool(outcome == .applied)]),
                                 status: outcome == .applied ? .created : .ok)
        } catch let error as DatabaseError where error.resultCode == .SQLITE_FULL {
            logger.error("snapshot not applied: disk full", metadata: ["node": "\(node)", "dataset": "\(id)"])
            throw APIError(.insufficientStorage, "disk_full", "the hub's disk is full; nothing was applied")
        } catch let error as IntakeError {
            logger.warning("snapshot refused", metadata: ["node": "\(node)", "dataset": "\(id)", "reason": "\(error)"])
            switch error {
            case .unenrolled: throw APIError(.forbidden, "unenrolled", error.description)
            case .badSignature: throw APIError(.forbidden, "bad_signature", error.description)
            case .outOfOrder(_, let seq, let digest):
                throw APIError(.conflict, "out_of_order", error.description,
                               extra: seq.map { ["head": .object(["seq": .int($0), "digest": .string(digest ?? "")])] } ?? [:])
            default: throw APIError(.unprocessableContent, "refused", error.description)
            }
        }
    }

    /// The largest original-to-compressed ratio a pushed body may inflate by (past its first MiB).
    /// Canonical snapshot JSON compresses about 5:1; a zero-filled bomb compresses thousands to one.
    /// The body is read (by a sender whose push header proved who it is) before the snapshot's own
    /// signature can be checked, so this is what one byte can cost: 32 bytes of memory at most.
    static let maxCompressionRatio = 32
    /// A body must arrive within this long: a sender trickling bytes holds its node's slot no longer.
    static let bodyDeadline: Duration = .seconds(300)

    /// The pushed snapshot, inflated as it arrives when `Content-Encoding: zstd`: memory grows only
    /// with what was produced, within `max_snapshot_bytes` and `maxCompressionRatio`.
    func readSnapshotBody(_ request: Request) async throws -> [UInt8] {
        let limit = config.maxSnapshotBytes
        let compressed: Bool
        switch request.headers[.contentEncoding]?.lowercased() {
        case nil, "identity": compressed = false
        case "zstd": compressed = true
        case let other?:
            throw APIError(.unsupportedMediaType, "unsupported_encoding", "Content-Encoding \(other) is not accepted (zstd or none)")
        }
        let deadline = ContinuousClock.now + Self.bodyDeadline
        func onTime() throws {
            guard ContinuousClock.now < deadline else {
                throw APIError(.requestTimeout, "too_slow", "the body did not arrive within \(Self.bodyDeadline)")
            }
        }
        guard compressed else {
            var body: [UInt8] = []
            for try await chunk in request.body {
                try onTime()
                guard body.count + chunk.readableBytes <= limit else {
                    throw APIError(.contentTooLarge, "too_large", "snapshot body over max_snapshot_bytes (\(limit))")
                }
                body.append(contentsOf: chunk.readableBytesView)
            }
            return body
        }
        let inflater = ZstdInflater(limit: limit, maxRatio: Self.maxCompressionRatio)
        do {
            for try await chunk in request.body {
                try onTime()
                guard inflater.consumed + chunk.readableBytes <= limit else { throw ZstdInflateError.tooLarge(limit: limit) }
                try chunk.withUnsafeReadableBytes { bytes throws(ZstdInflateError) in try inflater.feed(bytes) }
            }
            return try inflater.finish()
        } catch let error as ZstdInflateError {
            switch error {
            case .tooLarge, .ratio: throw APIError(.contentTooLarge, "too_large", "snapshot body \(error)")
            case .invalid, .truncated: throw APIError(.badRequest, "bad_request", "snapshot body \(error)")
            }
        }
    }

    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok, contentType: String = "application/json") throws -> Response {
        Response(status: status, headers: [.contentType: contentType], body: .init(byteBuffer: ByteBuffer(bytes: value.canonicalBytes())))
    }

    /// Serves until SIGTERM/SIGINT. `onListening` gets the bound address (useful with port 0).
    public func run(onListening: @escaping @Sendable (String) -> Void) async throws {
        let (host, port) = try ServerConfig.parseListen(config.listen)
        let (server, scheme) = try ServerConfig.server(idleTimeoutSeconds: config.idleTimeoutSeconds,
                                                      connections: ConnectionBudget(limits: config.connections),
                                                      tlsCertificate: config.tlsCertificate, tlsKey: config.tlsKey)
        try index.loadCounts()
        let app = Application(router: router(), server: server,
                              configuration: .init(address: .hostname(host, port: port), serverName: "cairn-hub"),
                              onServerRunning: { channel in onListening("\(scheme)://\(host):\(channel.localAddress?.port ?? port)") },
                              logger: logger)
        try await app.runService()
    }
}

/// A gate for concurrent intakes: one per node (a node pushes in order anyway, so a sender
/// trickling bytes in a node's name holds only that node's slot) and `limit` in all. `acquire`
/// never waits, so a flood of pushes holds no memory while it is turned away.
final class IntakeSlots: Sendable {
    let limit: Int
    private let busy = Mutex<Set<String>>([])

    init(limit: Int) { self.limit = limit }

    func acquire(_ node: String) -> Bool {
        busy.withLock { nodes in
            guard nodes.count < limit, !nodes.contains(node) else { return false }
            nodes.insert(node)
            return true
        }
    }

    func release(_ node: String) { _ = busy.withLock { $0.remove(node) } }
}
