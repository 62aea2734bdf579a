import CairnAuth
import CairnFoundation
import Crypto
import Foundation
import FuzzSupport

/// Tokens: a raw Authorization header must never verify (it cannot carry our signature), and a
/// payload the harness signs with the node's key reaches claim checking: whatever is accepted has
/// a token id, a known scope, and has not expired.
let home = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-fuzz-tokens-\(getpid())").path
let key = try! NodeKey.loadOrCreate(dataDirectory: home)
let verifier = blocking { try! await TokenVerifier(ownKey: key, audience: "fuzz-node", trusted: [], clockSkew: 60) }
let now = Date(timeIntervalSince1970: 1_800_000_000)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = fuzzBytes(data, count)
    guard let mode = bytes.first else { return 0 }
    let rest = Array(bytes.dropFirst())
    if mode & 1 == 0 {
        let header = String(decoding: rest, as: UTF8.self)
        let accepted = blocking { (try? await verifier.verify(authorization: header, now: now)) != nil }
        if accepted { fatalError("an unsigned header verified: \(header.prefix(200))") }
        return 0
    }
    // Signed by our key: a JWS over the fuzzed payload, header chosen by the next bit.
    let alg = mode & 2 == 0 ? "EdDSA" : "none"
    let head = Base64URL.encode(Array("{\"alg\":\"\(alg)\",\"kid\":\"\(key.keyID)\",\"typ\":\"JWT\"}".utf8))
    let body = Base64URL.encode(rest)
    let signingInput = head + "." + body
    guard let signature = try? key.privateKey.signature(for: Array(signingInput.utf8)) else { return 0 }
    let token = signingInput + "." + Base64URL.encode(signature)
    let grant = blocking { try? await verifier.verify(authorization: "Bearer " + token, now: now) }
    guard let grant else { return 0 }
    if alg != "EdDSA" { fatalError("alg \(alg) accepted") }
    if grant.tokenID.isEmpty { fatalError("a token without jti accepted") }
    if grant.scopes.isEmpty { fatalError("a token without a scope accepted") }
    if now.timeIntervalSince(grant.expires) > 60 { fatalError("an expired token accepted (exp \(grant.expires))") }
    return 0
}

runFuzzer { fuzzOne($0, $1) }
