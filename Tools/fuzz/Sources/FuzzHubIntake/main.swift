import CairnAuth
import CairnFoundation
import CairnHub
import CairnManifest
import Crypto
import Foundation
import FuzzSupport

/// The hub's intake of pushed snapshots. Each input is taken in twice: as the raw body (it must
/// be refused: it cannot carry the enrolled node's signature), and, when it parses as a JSON
/// object, re-addressed to the enrolled node and signed with its key, so the canonical scanner,
/// the entry slicing, ordering, removals and the entries root are all reached. No input may crash
/// the hub or hang it; one that is applied must then be the head.
let home = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-fuzz-hub-\(getpid())").path
try! FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
let index = try! HubIndex(path: home + "/hub.sqlite")
let key = try! NodeKey.loadOrCreate(dataDirectory: home)
try! index.enroll(node: "n", publicKey: key.publicKeyText)

func digest(_ bytes: [UInt8]) -> String { "sha256:" + Hex.encode(SHA256.hash(data: bytes)) }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = fuzzBytes(data, count)
    if (try? index.intake(node: "n", dataset: "d", claimedDigest: digest(bytes), body: bytes)) == .applied {
        fatalError("an unsigned body was applied")
    }
    guard case .object(var members)? = try? JSONParser.parse(bytes) else { return 0 }
    members["node"] = .string("n")
    members["dataset"] = .string("d")
    members["signature"] = nil
    let unsigned = JSONValue.object(members).canonicalBytes()
    guard let signature = try? key.privateKey.signature(for: unsigned) else { return 0 }
    members["signature"] = .object(["alg": .string("EdDSA"), "kid": .string(key.keyID), "sig": .string(Base64URL.encode(signature))])
    let signed = JSONValue.object(members).canonicalBytes()
    let claimed = digest(signed)
    if (try? index.intake(node: "n", dataset: "d", claimedDigest: claimed, body: signed)) == .applied {
        guard (try? index.head(node: "n", dataset: "d"))??.digest == claimed else { fatalError("applied, but not the head") }
    }
    return 0
}

runFuzzer { fuzzOne($0, $1) }
