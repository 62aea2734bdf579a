@testable import CairnAuth
import CairnFoundation
import CairnManifest
@testable import CairnNode
import Crypto
import Foundation
import Testing

@Suite struct TokenTests {
    let nodeKey = NodeKey(privateKey: Curve25519.Signing.PrivateKey())
    let hubKey = NodeKey(privateKey: Curve25519.Signing.PrivateKey())

    func verifier(trustHub: Bool = false) async throws -> TokenVerifier {
        try await TokenVerifier(ownKey: nodeKey, audience: "node-a",
                                trusted: trustHub ? [.init(name: "hub", publicKey: hubKey.publicKeyText)] : [],
                                clockSkew: 60)
    }

    func issue(_ key: NodeKey? = nil, audience: String? = "node-a", ttl: TimeInterval = 3600, now: Date = Date(),
               scopes: [Scope] = [.read]) async throws -> (token: String, id: String) {
        try await TokenIssuer(key: key ?? nodeKey).issue(subject: "job-1", datasets: ["ct", "mr"], scopes: scopes,
                                                         audience: audience, ttl: ttl, now: now)
    }

    @Test func roundTrip() async throws {
        let (token, id) = try await issue()
        let grant = try await verifier().verify(authorization: "Bearer " + token)
        #expect(grant.subject == "job-1")
        #expect(grant.datasets == ["ct", "mr"])
        #expect(grant.tokenID == id)
        #expect(grant.issuer == "node")
        #expect(grant.allows(.read) && !grant.allows(.ingest))
        // The cached path gives the same answer.
        #expect(try await verifier().verify(authorization: "bearer " + token) == grant)
    }

    @Test func adminIncludesReadAndIngest() async throws {
        let grant = try await verifier().verify(authorization: "Bearer " + issue(scopes: [.admin]).token)
        #expect(grant.allows(.read) && grant.allows(.ingest) && grant.allows(.admin))
    }

    @Test func refusals() async throws {
        let v = try await verifier()
        func refusal(_ header: String?) async -> TokenError? {
            do { _ = try await v.verify(authorization: header); return nil } catch { return error }
        }
        #expect(await refusal(nil) == .missing)
        #expect(await refusal("Basic abc") == .missing)
        #expect(await refusal("Bearer not-a-jwt") == .malformed("expected three dot-separated parts"))
        // Expired beyond the skew; not yet valid beyond the skew; another node's audience.
        let old = try await issue(ttl: 60, now: Date().addingTimeInterval(-7200)).token
        #expect(await refusal("Bearer " + old) == .expired)
        let future = try await issue(now: Date().addingTimeInterval(7200)).token
        #expect(await refusal("Bearer " + future) == .notYetValid)
        let otherNode = try await issue(audience: "node-b").token
        #expect(await refusal("Bearer " + otherNode) == .wrongAudience)
        // Signed by a key the node does not trust.
        let untrusted = try await issue(hubKey).token
        #expect(await refusal("Bearer " + untrusted) == .badSignature)
        // A payload edited after signing.
        let parts = try await issue().token.split(separator: ".").map(String.init)
        var claims = try JSONSerialization.jsonObject(with: Base64URL.decode(parts[1])!) as! [String: Any]
        claims["datasets"] = ["ct", "mr", "secret"]
        let forgedPayload = Base64URL.encode(try JSONSerialization.data(withJSONObject: claims))
        #expect(await refusal("Bearer \(parts[0]).\(forgedPayload).\(parts[2])") == .badSignature)
        // alg: none, with and without a signature.
        let none = Base64URL.encode(Data(#"{"alg":"none","typ":"JWT"}"#.utf8))
        #expect(await refusal("Bearer \(none).\(parts[1]).") == .unsupportedAlgorithm("none"))
        #expect(await refusal("Bearer \(none).\(parts[1]).\(parts[2])") == .unsupportedAlgorithm("none"))
        let hs256 = Base64URL.encode(Data(#"{"alg":"HS256","typ":"JWT"}"#.utf8))
        #expect(await refusal("Bearer \(hs256).\(parts[1]).\(parts[2])") == .unsupportedAlgorithm("HS256"))
    }

    @Test func revocationAppliesToCachedTokens() async throws {
        let v = try await verifier()
        let (token, id) = try await issue()
        _ = try await v.verify(authorization: "Bearer " + token)
        v.revoke([id])
        await #expect(throws: TokenError.revoked(id)) { try await v.verify(authorization: "Bearer " + token) }
    }

    @Test func trustedIssuerTokensAreAccepted() async throws {
        let token = try await issue(hubKey).token
        let grant = try await verifier(trustHub: true).verify(authorization: "Bearer " + token)
        #expect(grant.issuer == "hub")
        #expect(grant.subject == "job-1")
    }
}
