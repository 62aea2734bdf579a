import CairnAudit
import CairnAuth
import CairnHTTP
import CairnStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// The node's HTTP API (DESIGN.md "Node HTTP API, v1"): everything a handler needs, and the router.
public struct NodeAPI: Sendable {
    public let store: BlobStore
    public let verifier: TokenVerifier
    public let audit: AuditTrail
    public let metrics: NodeMetrics
    public let config: NodeConfig
    /// The searchable datasets' facets, rebuilt when the index's search generation moves.
    let searchFacets: SearchFacetCache
    /// Encapsulated instances' frame layouts, so a viewer's frame-by-frame requests parse once.
    let frameLayouts = FrameLayoutCache()
    /// Threads for work that waits on the network: response bodies that wait on the blob bucket,
    /// and, with a PostgreSQL index, every handler and service (`NodeServer.run`), so that a slow
    /// or unreachable index server never holds the cooperative pool's few threads. Nil when blobs
    /// and index are both local.
    let blockingExecutor: BlockingTaskExecutor?

    public init(store: BlobStore, verifier: TokenVerifier, audit: AuditTrail, metrics: NodeMetrics, config: NodeConfig) {
        self.store = store
        self.verifier = verifier
        self.audit = audit
        self.metrics = metrics
        self.config = config
        searchFacets = SearchFacetCache(store: store)
        blockingExecutor = store.blobLocation == .files && !store.indexIsShared ? nil : BlockingTaskExecutor(threads: Self.blockingThreads)
    }

    /// Handlers and response bodies waiting on the bucket or the index server at once.
    static let blockingThreads = 64

    /// Where blob reads open files and decode frames: the cooperative pool (as many threads as
    /// cores), never the event loop that serves other connections' cache hits; the blocking
    /// threads when blobs or index are remote.
    var decodeExecutor: any TaskExecutor { blockingExecutor ?? globalConcurrentExecutor }

    /// Where a response body runs: on its connection's event loop (see `EventLoopTaskExecutor`),
    /// unless it may wait on the bucket: bodies that `prefetch` never do; others (DICOMweb) run on
    /// the blocking threads when blobs are objects.
    func bodyExecutor(_ context: NodeRequestContext, prefetching: Bool = false) -> (any TaskExecutor)? {
        if let blockingExecutor, !prefetching, store.blobLocation != .files { return blockingExecutor }
        return context.eventLoop.map(EventLoopTaskExecutor.init)
    }

    /// Whether each connection's requests are handled on its event loop (`EventLoopChildChannel`):
    /// when blobs and index are local. Otherwise handlers prefer the blocking threads (`NodeServer.run`).
    var handlesOnEventLoop: Bool { blockingExecutor == nil }

    public func router() -> Router<NodeRequestContext> {
        let router = Router(context: NodeRequestContext.self)
        router.middlewares.add(RequestMetricsMiddleware(metrics: metrics))
        if handlesOnEventLoop { router.middlewares.add(OffEventLoopMiddleware()) }
        addHealthRoutes(to: router)
        addBlobRoutes(to: router)
        addDatasetRoutes(to: router)
        addUploadRoute(to: router)
        addSearchRoutes(to: router)
        addDicomWebRoutes(to: router)
        return router
    }

    /// Deny by default: a valid token with `scope`, and when `dataset` is given, a token naming it.
    /// Every refusal is audited; the actor of an unverifiable token is `-` (its claims mean nothing).
    func authorize(_ request: Request, context: NodeRequestContext, scope: Scope, dataset: String? = nil,
                   action: String) async throws -> AccessGrant {
        // Nothing is served that cannot be audited.
        if let problem = audit.problem {
            deny(actor: "-", action: action, dataset: dataset, status: 503, detail: problem, context: context)
            throw APIError(.serviceUnavailable, "audit_unavailable", problem + "; data requests are refused until it clears")
        }
        let grant: AccessGrant
        do {
            grant = try await verifier.verify(authorization: request.headers[.authorization])
        } catch {
            deny(actor: "-", action: action, dataset: dataset, status: 401, detail: error.description, context: context)
            throw APIError.unauthorized(error.description)
        }
        guard grant.allows(scope) else {
            let detail = "token scope does not include \(scope.rawValue)"
            deny(actor: grant.subject, action: action, dataset: dataset, status: 403, detail: detail, context: context)
            throw APIError.forbidden(detail)
        }
        if let dataset, !grant.covers(dataset: dataset) {
            let detail = "token does not grant dataset \(dataset)"
            deny(actor: grant.subject, action: action, dataset: dataset, status: 403, detail: detail, context: context)
            throw APIError.forbidden(detail)
        }
        return grant
    }

    func deny(actor: String, action: String, dataset: String? = nil, digest: String? = nil, status: Int, detail: String,
              context: NodeRequestContext) {
        audit.record(AuditEvent(actor: actor, action: "deny", dataset: dataset, digest: digest, status: status,
                                detail: "\(action): \(detail)" + (context.peer.map { " (from \($0))" } ?? "")))
    }

    static func json(_ object: Any, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) throws -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// With request loops on the event loops, every handler but the blob reads' runs on the cooperative
/// pool, as before: index queries, uploads, searches and DICOMweb must not hold a loop that other
/// connections wait on. Blob reads stay (`blob`), and send what needs decoding to the pool.
struct OffEventLoopMiddleware: RouterMiddleware {
    typealias Context = NodeRequestContext

    func handle(_ request: Request, context: Context,
                next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.uri.path.hasPrefix("/v1/blobs/") { return try await next(request, context) }
        return try await withTaskExecutorPreference(globalConcurrentExecutor) { try await next(request, context) }
    }
}

/// Runs blocking work (index reads, decoding) on the cooperative pool, off the event loop that
/// serves a connection's cache hits.
func offEventLoop<T: Sendable>(_ work: @Sendable () throws -> T) async throws -> T {
    try await withTaskExecutorPreference(globalConcurrentExecutor) { try work() }
}

/// Counts requests by route, method and status, and times them to the response head.
struct RequestMetricsMiddleware: RouterMiddleware {
    typealias Context = NodeRequestContext
    let metrics: NodeMetrics

    func handle(_ request: Request, context: Context,
                next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let route = Self.route(of: request.uri.path)
        do {
            let response = try await next(request, context)
            metrics.requestFinished(route: route, method: request.method.rawValue, status: response.status.code,
                                    duration: ContinuousClock.now - start)
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            metrics.requestFinished(route: route, method: request.method.rawValue, status: status,
                                    duration: ContinuousClock.now - start)
            throw error
        }
    }

    static let dicomWebShapes: Set<String> = {
        let study = "studies/{}", series = study + "/series/{}", instance = series + "/instances/{}"
        var shapes: Set<String> = ["studies", "series", "instances", study + "/series", study + "/instances", series + "/instances",
                                   instance + "/frames/{}", instance + "/frames/{}/rendered", instance + "/bulkdata/{}/{}"]
        for level in [study, series, instance] {
            shapes.formUnion([level, level + "/metadata", level + "/rendered", level + "/thumbnail"])
        }
        return shapes
    }()

    /// The route pattern, so metric labels stay few whatever paths clients send.
    static func route(of path: String) -> String {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        switch (parts.count, parts.first, parts.dropFirst().first) {
        case (1, "healthz", _), (1, "readyz", _), (1, "metrics", _): return "/" + parts[0]
        case (3, "v1", "blobs"): return "/v1/blobs/{digest}"
        case (2, "v1", "datasets"): return "/v1/datasets"
        case (3, "v1", "datasets"): return "/v1/datasets/{id}"
        case (4, "v1", "datasets") where parts[3] == "entries": return "/v1/datasets/{id}/entries"
        case (4, "v1", "datasets") where parts[3] == "instances": return "/v1/datasets/{id}/instances"
        case (5, "v1", "datasets") where parts[3] == "snapshots": return "/v1/datasets/{id}/snapshots/latest"
        case (_, "dicomweb", _) where parts.count >= 3:
            // Resource words kept, UIDs, frame lists and bulk data locations replaced; only the
            // shapes the routes serve become labels, so no request can mint new series.
            let words: Set<Substring> = ["studies", "series", "instances", "metadata", "frames", "bulkdata", "rendered", "thumbnail"]
            let shape = parts.dropFirst(2).map { words.contains($0) ? String($0) : "{}" }.joined(separator: "/")
            return Self.dicomWebShapes.contains(shape) ? "/dicomweb/{dataset}/" + shape : "/dicomweb/other"
        default: return "other"
        }
    }
}
