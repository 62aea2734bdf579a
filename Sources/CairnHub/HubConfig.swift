import CairnHTTP
import Foundation

/// `cairn hub serve` settings: embedded defaults, overridden by a JSON config file
/// (`Ops/hub.example.json` documents every key), overridden by command-line flags.
public struct HubConfig: Decodable, Sendable, Equatable {
    public var listen = "127.0.0.1:8710"
    /// PEM certificate chain and private key; when both are set the hub speaks HTTPS only.
    public var tlsCertificate: String?
    public var tlsKey: String?
    /// Count answers with fewer subjects or studies than this (but more than none) are withheld
    /// for that dataset, and left out of the totals: small cells can single out a patient.
    public var minCount = 5
    /// Pushed snapshots larger than this after decompression are refused.
    public var maxSnapshotBytes = 1 << 30
    /// A client must complete each request head within this many seconds.
    public var idleTimeoutSeconds = 30.0
    /// When false (the default), the catalogue and count queries need a token with the `catalog`
    /// scope signed by the hub's key (`cairn hub grant --scope catalog`). True serves them to
    /// anyone who can reach the hub, e.g. a public dataset catalogue.
    public var openCatalog = false
    /// Clock skew tolerated on tokens' `exp` and `nbf`.
    public var clockSkewSeconds = 60.0
    /// What samply Focus sends as `Authorization: Secret <search_secret>` for `/eucaim/search`;
    /// unset, only search-scope tokens from the hub's key are accepted there.
    public var searchSecret: String?
    /// The hub's address as the federation reaches it (`https://hub.example.org`): DCAT's `@id`s
    /// are built from it. Unset, they are paths relative to the catalogue (never a caller's `Host`).
    public var publicURL: String?
    /// Connections held at once, in all and per client address, and how long a client may leave a
    /// response unread (`max_connections`, `max_connections_per_client`, `write_stall_seconds`).
    public var connections = ConnectionLimits()

    enum CodingKeys: String, CodingKey {
        case listen, tlsCertificate = "tls_certificate", tlsKey = "tls_key", minCount = "min_count"
        case maxSnapshotBytes = "max_snapshot_bytes", idleTimeoutSeconds = "idle_timeout_seconds"
        case openCatalog = "open_catalog", clockSkewSeconds = "clock_skew_seconds", searchSecret = "search_secret"
        case publicURL = "public_url"
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = HubConfig()
        listen = try c.decodeIfPresent(String.self, forKey: .listen) ?? defaults.listen
        tlsCertificate = try c.decodeIfPresent(String.self, forKey: .tlsCertificate)
        tlsKey = try c.decodeIfPresent(String.self, forKey: .tlsKey)
        minCount = try c.decodeIfPresent(Int.self, forKey: .minCount) ?? defaults.minCount
        maxSnapshotBytes = try c.decodeIfPresent(Int.self, forKey: .maxSnapshotBytes) ?? defaults.maxSnapshotBytes
        idleTimeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .idleTimeoutSeconds) ?? defaults.idleTimeoutSeconds
        openCatalog = try c.decodeIfPresent(Bool.self, forKey: .openCatalog) ?? defaults.openCatalog
        clockSkewSeconds = try c.decodeIfPresent(Double.self, forKey: .clockSkewSeconds) ?? defaults.clockSkewSeconds
        searchSecret = try c.decodeIfPresent(String.self, forKey: .searchSecret)
        publicURL = try c.decodeIfPresent(String.self, forKey: .publicURL).map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        if let publicURL, !(publicURL.hasPrefix("http://") || publicURL.hasPrefix("https://")) {
            throw ServerConfigError.invalid(path: "public_url", reason: "must start with http:// or https://")
        }
        if let searchSecret, searchSecret.utf8.count < 16 {
            throw ServerConfigError.invalid(path: "search_secret", reason: "must be at least 16 characters")
        }
        connections = try ConnectionLimits(from: decoder)
        try ServerConfig.refuseUnknownKeys(in: decoder, known: CodingKeys.self, alsoKnown: ConnectionLimits.keys)
        guard minCount >= 1 else { throw ServerConfigError.invalid(path: "min_count", reason: "must be 1 or more (1 withholds nothing)") }
    }

    public static func load(path: String) throws -> HubConfig { try ServerConfig.load(HubConfig.self, path: path) }
}
