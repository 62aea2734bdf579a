import CairnFoundation
import CairnManifest
import Crypto
import Foundation
import JWTKit
import Synchronization

/// What a token lets its holder do. On a node: `read`, `ingest`, `admin` (which includes both);
/// on the hub: `catalog` (the catalogue and count queries).
public enum Scope: String, Sendable, CaseIterable {
    /// `search`: federated counts (EUCAIM, through Focus) over the datasets marked searchable.
    /// `monitor`: the node's metrics and why it is not ready (a scraper's token; names no dataset).
    case read, ingest, admin, catalog, search, monitor

    func allows(_ needed: Scope) -> Bool { self == needed || (self == .admin && needed != .catalog) }
}

/// The claims of a Cairn access token (DESIGN.md "Auth").
struct AccessClaims: JWTPayload {
    var sub: SubjectClaim
    var aud: AudienceClaim?
    var exp: ExpirationClaim
    var nbf: NotBeforeClaim?
    var iat: IssuedAtClaim?
    var jti: IDClaim?
    var datasets: [String]
    /// One scope, or several separated by spaces (OAuth style).
    var scope: String

    /// Time, audience and revocation are checked by `TokenVerifier` with the configured clock skew,
    /// after jwt-kit has checked the signature; nothing is left to check here.
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// A verified token, as the request handlers see it.
public struct AccessGrant: Sendable, Equatable {
    public var subject: String
    public var datasets: [String]
    public var scopes: Set<Scope>
    public var tokenID: String
    /// `node` for the node's own key, else the trusted issuer's configured name.
    public var issuer: String
    public var expires: Date

    public func allows(_ scope: Scope) -> Bool { scopes.contains { $0.allows(scope) } }
    public func covers(dataset: String) -> Bool { datasets.contains(dataset) }
}

/// Why a token was refused; the text goes to the client and the audit log (never the token).
public enum TokenError: Error, CustomStringConvertible, Equatable {
    case missing
    case malformed(String)
    case unsupportedAlgorithm(String)
    case badSignature
    case expired
    case notYetValid
    case wrongAudience
    case revoked(String)
    case noTokenID
    case badScope(String)

    public var description: String {
        switch self {
        case .missing: "no bearer token"
        case .malformed(let reason): "malformed token: \(reason)"
        case .unsupportedAlgorithm(let alg): "token algorithm '\(alg)' is not accepted (EdDSA only)"
        case .badSignature: "token signature does not verify against any trusted key"
        case .expired: "token has expired"
        case .notYetValid: "token is not valid yet"
        case .wrongAudience: "token is for another node or hub"
        case .revoked(let jti): "token \(jti) has been revoked"
        case .noTokenID: "token has no jti, so it could not be revoked; refused"
        case .badScope(let scope): "token scope '\(scope)' is not one of \(Scope.allCases.map(\.rawValue).joined(separator: ", "))"
        }
    }
}

/// An issuer whose tokens are accepted besides the server's own key (e.g. a node trusting the hub).
public struct TrustedIssuer: Codable, Sendable, Equatable {
    public var name: String
    /// Ed25519 public key, base64url of its 32 raw bytes (as `cairn key show` prints it).
    public var publicKey: String

    public init(name: String, publicKey: String) {
        self.name = name
        self.publicKey = publicKey
    }

    enum CodingKeys: String, CodingKey {
        case name, publicKey = "public_key"
    }
}

/// Signs tokens with the node's (or the hub's) key (`cairn token issue`, `cairn hub grant`).
public struct TokenIssuer: Sendable {
    let key: NodeKey

    public init(key: NodeKey) { self.key = key }

    /// Returns the compact JWT and its `jti`.
    public func issue(subject: String, datasets: [String], scopes: [Scope], audience: String?, ttl: TimeInterval,
                      now: Date = Date()) async throws -> (token: String, id: String) {
        let id = UUID().uuidString.lowercased()
        let claims = AccessClaims(sub: .init(value: subject), aud: audience.map { .init(value: [$0]) },
                                  exp: .init(value: now.addingTimeInterval(ttl)), nbf: .init(value: now.addingTimeInterval(-1)),
                                  iat: .init(value: now), jti: .init(value: id), datasets: datasets,
                                  scope: scopes.map(\.rawValue).joined(separator: " "))
        let keys = JWTKeyCollection()
        await keys.add(eddsa: EdDSA.PrivateKey(backing: key.privateKey), kid: JWKIdentifier(string: key.keyID))
        return (try await keys.sign(claims, kid: JWKIdentifier(string: key.keyID)), id)
    }
}

/// Checks bearer tokens: EdDSA signature by the server's own key or a trusted issuer's,
/// `exp`/`nbf` within the clock skew, `aud` = the server's id (node id, or the hub's) when present,
/// not revoked. Verified tokens are cached
/// until they expire, because an Ed25519 verification costs about as much as serving a small range.
public final class TokenVerifier: Sendable {
    private let keys: JWTKeyCollection
    private let issuerNames: [String: String]
    /// The server's own name: a token naming another audience is refused.
    private let audience: String
    private let clockSkew: TimeInterval
    private let verified = Mutex<[String: AccessGrant]>([:])
    private let revoked = Mutex<Set<String>>([])
    private static let cacheLimit = 10_000

    public init(ownKey: NodeKey, audience: String, trusted: [TrustedIssuer], clockSkew: TimeInterval) async throws {
        keys = JWTKeyCollection()
        var names = [ownKey.keyID: "node"]
        await keys.add(eddsa: EdDSA.PublicKey(backing: ownKey.publicKey), kid: JWKIdentifier(string: ownKey.keyID))
        for issuer in trusted {
            let key = try NodeKey.publicKey(text: issuer.publicKey)
            let kid = NodeKey.keyID(of: key)
            names[kid] = issuer.name
            await keys.add(eddsa: EdDSA.PublicKey(backing: key), kid: JWKIdentifier(string: kid))
        }
        issuerNames = names
        self.audience = audience
        self.clockSkew = clockSkew
    }

    /// Adds revoked token ids (the node polls the index for new ones).
    public func revoke(_ ids: [String]) {
        if ids.isEmpty { return }
        revoked.withLock { $0.formUnion(ids) }
    }

    public func verify(authorization: String?, now: Date = Date()) async throws(TokenError) -> AccessGrant {
        guard let authorization, let token = Self.bearerToken(authorization) else { throw .missing }
        if let grant = verified.withLock({ $0[token] }) { return try check(grant, now: now) }
        let header = try Self.header(of: token)
        guard header.alg == "EdDSA" else { throw .unsupportedAlgorithm(header.alg ?? "(none)") }
        let claims: AccessClaims
        do {
            claims = try await keys.verify(token, as: AccessClaims.self, iteratingKeys: header.kid == nil)
        } catch let error as JWTError where error.errorType == .claimVerificationFailure {
            throw .malformed("\(error.reason ?? "claims")")
        } catch let error as DecodingError {
            throw .malformed("claims: \(error)")
        } catch {
            throw .badSignature
        }
        if let named = claims.aud, !named.value.contains(audience) { throw .wrongAudience }
        guard let id = claims.jti?.value, !id.isEmpty else { throw .noTokenID }
        var scopes = Set<Scope>()
        for word in claims.scope.split(separator: " ") {
            guard let scope = Scope(rawValue: String(word)) else { throw .badScope(claims.scope) }
            scopes.insert(scope)
        }
        guard !scopes.isEmpty else { throw .badScope(claims.scope) }
        var grant = AccessGrant(subject: claims.sub.value, datasets: claims.datasets, scopes: scopes, tokenID: id,
                                issuer: header.kid.flatMap { issuerNames[$0] } ?? "trusted", expires: claims.exp.value)
        if let nbf = claims.nbf?.value, nbf.timeIntervalSince(now) > clockSkew { throw .notYetValid }
        grant = try check(grant, now: now)
        verified.withLock { cache in
            if cache.count >= Self.cacheLimit { cache.removeAll(keepingCapacity: true) }
            cache[token] = grant
        }
        return grant
    }

    /// The grant of a token this verifier has already verified (and that has not expired or been
    /// revoked since), without waiting: nil when it would have to verify, or refuse, it now (the
    /// caller then calls `verify`, which says why).
    public func cachedGrant(authorization: String?, now: Date = Date()) -> AccessGrant? {
        guard let authorization, let token = Self.bearerToken(authorization),
              let grant = verified.withLock({ $0[token] }) else { return nil }
        return try? check(grant, now: now)
    }

    /// The token of `Bearer <token>` (scheme in any case, blanks around the token dropped), read
    /// byte by byte: this runs on every request, and Foundation's trimming cost a sixth of a
    /// cached range read's CPU.
    static func bearerToken(_ header: String) -> String? {
        let bytes = Array(header.utf8)
        let scheme = Array("bearer ".utf8)
        guard bytes.count > scheme.count else { return nil }
        for index in 0..<scheme.count {
            let byte = bytes[index]
            let lower = byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
            guard lower == scheme[index] else { return nil }
        }
        var start = scheme.count, end = bytes.count
        while start < end, bytes[start] == 0x20 || bytes[start] == 0x09 { start += 1 }
        while end > start, bytes[end - 1] == 0x20 || bytes[end - 1] == 0x09 { end -= 1 }
        guard start < end else { return nil }
        return String(decoding: bytes[start..<end], as: UTF8.self)
    }

    private func check(_ grant: AccessGrant, now: Date) throws(TokenError) -> AccessGrant {
        if now.timeIntervalSince(grant.expires) > clockSkew { throw .expired }
        if revoked.withLock({ $0.contains(grant.tokenID) }) { throw .revoked(grant.tokenID) }
        return grant
    }

    private struct Header: Decodable {
        var alg: String?
        var kid: String?
    }

    private static func header(of token: String) throws(TokenError) -> Header {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw .malformed("expected three dot-separated parts") }
        guard let data = Base64URL.decode(String(parts[0])), let header = try? JSONDecoder().decode(Header.self, from: data)
        else { throw .malformed("header is not base64url JSON") }
        return header
    }
}
