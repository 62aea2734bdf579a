import CairnAuth
import CairnHTTP
import CairnStore
import Foundation

/// `cairn node serve` settings: embedded defaults, overridden by a JSON config file
/// (`Ops/node.example.json` documents every key), overridden by command-line flags.
public struct NodeConfig: Decodable, Sendable, Equatable {
    public var listen = "127.0.0.1:8700"
    /// Names this node in tokens' `aud` and, later, to the hub. Defaults to the host name.
    public var nodeID: String?
    public var hubURL: String?
    /// PEM certificate chain and private key; when both are set the node speaks HTTPS only.
    public var tlsCertificate: String?
    public var tlsKey: String?
    /// Issuers besides the node itself whose tokens are accepted (e.g. the hub).
    public var trustedIssuers: [TrustedIssuer] = []
    /// Uploads larger than this are refused with 413.
    public var maxUploadBytes: UInt64 = 4 << 30
    /// Below this many free bytes, uploads get 507 and `/readyz` reports not ready.
    public var diskLowWaterBytes: UInt64 = 1 << 30
    /// More ranges than this in one Range header get 416.
    public var maxRanges = 64
    /// A client must complete each request head within this many seconds (slowloris guard).
    public var idleTimeoutSeconds = 30.0
    /// Clock skew tolerated on `exp` and `nbf`.
    public var clockSkewSeconds = 60.0
    /// Audit records are written in batches at most this far apart.
    public var auditFlushMilliseconds = 200
    /// At most this many audit records wait for the index; past it (or while a write fails) the
    /// node refuses data requests with 503 rather than serve them unaudited.
    public var auditMaxPending = 100_000
    /// What samply Focus sends as `Authorization: Secret <search_secret>` (its `AUTH_HEADER`), for
    /// the federated search endpoints; unset, only `search`-scope tokens are accepted there.
    public var searchSecret: String?
    /// Search answer rows with fewer subjects or studies than this (but more than none) are withheld.
    public var minCount = 5
    /// The base URL clients reach the node at (`https://cairn.example.org`), when a proxy stands in
    /// front: DICOMweb's RetrieveURL and BulkDataURI values start with it. Unset, they are built from
    /// the request's Host and the port it arrived on.
    public var publicURL: String?
    /// Connections held at once, in all and per client address, and how long a client may leave a
    /// response unread (`max_connections`, `max_connections_per_client`, `write_stall_seconds`).
    public var connections = ConnectionLimits()

    enum CodingKeys: String, CodingKey, CaseIterable {
        case listen, nodeID = "node_id", hubURL = "hub_url", tlsCertificate = "tls_certificate", tlsKey = "tls_key"
        case trustedIssuers = "trusted_issuers", maxUploadBytes = "max_upload_bytes"
        case diskLowWaterBytes = "disk_low_water_bytes", maxRanges = "max_ranges"
        case idleTimeoutSeconds = "idle_timeout_seconds", clockSkewSeconds = "clock_skew_seconds"
        case auditFlushMilliseconds = "audit_flush_milliseconds", auditMaxPending = "audit_max_pending"
        case searchSecret = "search_secret", minCount = "min_count", publicURL = "public_url"
    }

    /// Every top-level key a node's config file may hold: the server's, and the storage keys that
    /// share the file (`StorageConfig` reads those).
    public static var fileKeys: Set<String> {
        Set(CodingKeys.allCases.map(\.stringValue)).union(StorageConfig.keys).union(ConnectionLimits.keys)
    }

    public init() {}

    /// Missing keys keep their defaults; unknown keys are an error (a typo must not pass silently).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = NodeConfig()
        listen = try c.decodeIfPresent(String.self, forKey: .listen) ?? defaults.listen
        nodeID = try c.decodeIfPresent(String.self, forKey: .nodeID)
        hubURL = try c.decodeIfPresent(String.self, forKey: .hubURL)
        tlsCertificate = try c.decodeIfPresent(String.self, forKey: .tlsCertificate)
        tlsKey = try c.decodeIfPresent(String.self, forKey: .tlsKey)
        trustedIssuers = try c.decodeIfPresent([TrustedIssuer].self, forKey: .trustedIssuers) ?? []
        maxUploadBytes = try c.decodeIfPresent(UInt64.self, forKey: .maxUploadBytes) ?? defaults.maxUploadBytes
        diskLowWaterBytes = try c.decodeIfPresent(UInt64.self, forKey: .diskLowWaterBytes) ?? defaults.diskLowWaterBytes
        maxRanges = try c.decodeIfPresent(Int.self, forKey: .maxRanges) ?? defaults.maxRanges
        idleTimeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .idleTimeoutSeconds) ?? defaults.idleTimeoutSeconds
        clockSkewSeconds = try c.decodeIfPresent(Double.self, forKey: .clockSkewSeconds) ?? defaults.clockSkewSeconds
        auditFlushMilliseconds = try c.decodeIfPresent(Int.self, forKey: .auditFlushMilliseconds) ?? defaults.auditFlushMilliseconds
        auditMaxPending = try c.decodeIfPresent(Int.self, forKey: .auditMaxPending) ?? defaults.auditMaxPending
        guard auditMaxPending >= 1 else { throw ServerConfigError.invalid(path: "audit_max_pending", reason: "must be 1 or more") }
        searchSecret = try c.decodeIfPresent(String.self, forKey: .searchSecret)
        if let searchSecret, searchSecret.utf8.count < 16 {
            throw ServerConfigError.invalid(path: "search_secret", reason: "must be at least 16 characters")
        }
        minCount = try c.decodeIfPresent(Int.self, forKey: .minCount) ?? defaults.minCount
        guard minCount >= 1 else { throw ServerConfigError.invalid(path: "min_count", reason: "must be 1 or more (1 withholds nothing)") }
        publicURL = try c.decodeIfPresent(String.self, forKey: .publicURL).map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        if let publicURL, !(publicURL.hasPrefix("http://") || publicURL.hasPrefix("https://")) {
            throw ServerConfigError.invalid(path: "public_url", reason: "must start with http:// or https://")
        }
        connections = try ConnectionLimits(from: decoder)
        try ServerConfig.refuseUnknownKeys(in: decoder, known: CodingKeys.self, alsoKnown: StorageConfig.keys.union(ConnectionLimits.keys))
    }

    public static func load(path: String) throws -> NodeConfig { try ServerConfig.load(NodeConfig.self, path: path) }

    /// `host:port`, with the port 0-65535.
    public func listenAddress() throws -> (host: String, port: Int) { try ServerConfig.parseListen(listen) }
}
