import CairnAuth
import CairnHTTP
import CairnStore
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle

/// `cairn node serve`: the store, the API, the audit trail and housekeeping in one service group,
/// stopped gracefully by SIGTERM or SIGINT (in-flight responses finish, the audit is flushed).
public struct NodeServer: Sendable {
    public let api: NodeAPI
    public let nodeID: String
    let housekeeping: NodeHousekeeping
    let pusher: ReplicationPusher?
    let logger: Logger

    /// Opens (initialising if needed) the store and key at `dataDirectory` and wires the API.
    public static func make(config: NodeConfig, dataDirectory: String, storage: StorageConfig = StorageConfig(),
                            logger: Logger) async throws -> NodeServer {
        let store = try BlobStore.initialize(at: dataDirectory, storage: storage, readCacheBytes: storage.effectiveReadCacheBytes)
        let key = try NodeKey.loadOrCreate(dataDirectory: store.root)
        // One identity per node: the stored id wins, and a different --node-id is refused.
        let nodeID = try store.claimNodeID(config.nodeID, fallback: ProcessInfo.processInfo.hostName)
        // Datasets whose pushes the hub refused for good are tried again once per start.
        try store.outboxResume()
        let verifier = try await TokenVerifier(ownKey: key, audience: nodeID, trusted: config.trustedIssuers,
                                               clockSkew: config.clockSkewSeconds)
        // Revocations made while the node was down apply from the first request on.
        verifier.revoke(try store.revokedTokens(after: 0).jtis)
        let metrics = NodeMetrics()
        let audit = AuditTrail(store: store, interval: .milliseconds(config.auditFlushMilliseconds), metrics: metrics,
                               logger: logger, maxPending: config.auditMaxPending)
        let api = NodeAPI(store: store, verifier: verifier, audit: audit, metrics: metrics, config: config)
        let housekeeping = NodeHousekeeping(store: store, verifier: verifier, metrics: metrics, interval: .seconds(1),
                                            logger: logger)
        let pusher = config.hubURL.map {
            ReplicationPusher(store: store, nodeID: nodeID, key: key.privateKey, hubURL: $0.hasSuffix("/") ? String($0.dropLast()) : $0,
                              metrics: metrics, logger: logger)
        }
        return NodeServer(api: api, nodeID: nodeID, housekeeping: housekeeping, pusher: pusher, logger: logger)
    }

    /// Serves until SIGTERM/SIGINT. `onListening` gets the bound address (useful with port 0).
    public func run(onListening: @escaping @Sendable (String) -> Void) async throws {
        let config = api.config
        let (host, port) = try config.listenAddress()
        let (server, scheme) = try ServerConfig.server(idleTimeoutSeconds: config.idleTimeoutSeconds,
                                                      connections: ConnectionBudget(limits: config.connections, observer: api.metrics.connections),
                                                      tlsCertificate: config.tlsCertificate, tlsKey: config.tlsKey,
                                                      onEventLoop: api.handlesOnEventLoop,
                                                      immediate: api.handlesOnEventLoop ? ("cairn-node", { [api] in api.immediateBlobAnswer($0) }) : nil)
        let app = Application(
            router: api.router(), server: server,
            configuration: .init(address: .hostname(host, port: port), serverName: "cairn-node"),
            services: [api.audit, housekeeping] + (pusher.map { [$0] } ?? []),
            onServerRunning: { channel in
                let bound = channel.localAddress?.port ?? port
                onListening("\(scheme)://\(host):\(bound)")
            },
            logger: logger)
        // Child tasks inherit the preference: every connection's handler and every service.
        try await withTaskExecutorPreference(api.store.indexIsShared ? api.blockingExecutor : nil) {
            try await app.runService()
        }
    }
}
