import CairnFoundation
import Crypto
import Testing
@testable import CairnManifest

/// The header a node signs its pushes with, and what the hub refuses of it.
@Suite struct PushAuthorizationTests {
    @Test func aSignedPushVerifiesForItsOwnFieldsOnly() throws {
        let key = Curve25519.Signing.PrivateKey()
        let digest = "sha256:" + String(repeating: "ab", count: 32)
        let header = try PushAuthorization.header(key: key, node: "n1", dataset: "ds", digest: digest, timestamp: 1_800_000_000,
                                                  contentLength: 1234)
        let parsed = try #require(PushAuthorization(header: header))
        func valid(node: String = "n1", dataset: String = "ds", length: Int = 1234, now: Int64 = 1_800_000_030,
                   key check: Curve25519.Signing.PublicKey = key.publicKey) -> Bool {
            parsed.isValid(for: check, node: node, dataset: dataset, digest: digest, contentLength: length, now: now, skew: 60)
        }
        #expect(valid())
        #expect(!valid(node: "n2") && !valid(dataset: "other") && !valid(length: 1235))
        #expect(!valid(now: 1_800_000_061) && !valid(now: 1_799_999_939))
        #expect(!valid(key: Curve25519.Signing.PrivateKey().publicKey))
    }

    @Test func hostileHeadersAreNotParsedAndNeverTrap() {
        let signature = Base64URL.encode([UInt8](repeating: 7, count: 64))
        for header in ["t=-9223372036854775808;sig=\(signature)", "t=9223372036854775807;sig=\(signature)",
                       "t=99999999999999999999;sig=\(signature)", "t=1;sig=AAAA", "sig=\(signature)", "t=1", "", ";;",
                       "t=1;sig=\(signature);x=1", "t=1=2;sig=\(signature)"] {
            #expect(PushAuthorization(header: header) == nil, "\(header)")
        }
        let farFuture = PushAuthorization(header: "t=253402300799;sig=\(signature)")
        #expect(farFuture?.isValid(for: Curve25519.Signing.PrivateKey().publicKey, node: "n", dataset: "d", digest: "x",
                                   contentLength: 0, now: Int64.min, skew: Int64.max) == false)
    }
}
