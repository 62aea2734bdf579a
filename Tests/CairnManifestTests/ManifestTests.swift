import CairnFoundation
import Crypto
import Foundation
import Testing
@testable import CairnManifest

@Suite struct CanonicalJSONTests {
    @Test func sortedCompactEscaped() throws {
        let value = JSONValue.object(["b": .int(-3), "a": .array([.null, .bool(true), .string("é\"\\\n\u{1}")]), "A": .object([:])])
        #expect(String(decoding: value.canonicalBytes(), as: UTF8.self) == #"{"A":{},"a":[null,true,"é\"\\\n\u0001"],"b":-3}"#)
    }

    @Test func parseThenEncodeIsStable() throws {
        let text = #"{ "z" : [1, 2, {"y": false, "x": null}], "k": "v" }"#
        let value = try JSONValue.parse(Data(text.utf8))
        let canonical = value.canonicalBytes()
        #expect(String(decoding: canonical, as: UTF8.self) == #"{"k":"v","z":[1,2,{"x":null,"y":false}]}"#)
        #expect(try JSONValue.parse(canonical).canonicalBytes() == canonical)
        #expect(throws: (any Error).self) { try JSONValue.parse(Data(#"{"f": 1.5}"#.utf8)) }
    }
}

@Suite struct MerkleTests {
    func hash(_ bytes: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: bytes)) }

    @Test func knownShapes() {
        #expect(Merkle.root(leaves: [UInt8]()) == Hex.encode(hash([])))
        let a = Merkle.leafHash(Array("a".utf8)), b = Merkle.leafHash(Array("b".utf8)), c = Merkle.leafHash(Array("c".utf8))
        #expect(a == hash([0] + Array("a".utf8)))
        #expect(Merkle.root(leaves: a) == Hex.encode(a))
        let ab = hash([1] + a + b)
        #expect(Merkle.root(leaves: a + b) == Hex.encode(ab))
        #expect(Merkle.root(leaves: a + b + c) == Hex.encode(hash([1] + ab + c)))
        #expect(Merkle.root(leaves: b + a) != Merkle.root(leaves: a + b))
    }

    /// The in-place reduction against a plain level-by-level one, for every size up to 70.
    @Test func agreesWithAPlainTree() {
        for count in 1...70 {
            var level = (0..<count).map { Merkle.leafHash(Array("entry \($0)".utf8)) }
            let flat = level.flatMap { $0 }
            while level.count > 1 {
                level = stride(from: 0, to: level.count, by: 2).map { i in i + 1 < level.count ? hash([1] + level[i] + level[i + 1]) : level[i] }
            }
            #expect(Merkle.root(leaves: flat) == Hex.encode(level[0]), "\(count) leaves")
        }
    }

    /// Large trees are reduced in aligned subtrees on all cores first: same root as the plain tree,
    /// at sizes around the threshold and with odd last subtrees.
    @Test func subtreesAgreeWithAPlainTree() {
        for count in [65_535, 65_536, 65_537, 100_003] {
            var level = (0..<count).map { Merkle.leafHash(Array("entry \($0)".utf8)) }
            let flat = level.flatMap { $0 }
            while level.count > 1 {
                level = stride(from: 0, to: level.count, by: 2).map { i in i + 1 < level.count ? hash([1] + level[i] + level[i + 1]) : level[i] }
            }
            #expect(Merkle.root(leaves: flat) == Hex.encode(level[0]), "\(count) leaves")
        }
    }
}

@Suite struct SnapshotTests {
    let key = Curve25519.Signing.PrivateKey()

    func entry(_ n: Int) -> (digest: String, entry: JSONValue) {
        let digest = "sha256:" + String(repeating: String(n % 10), count: 64)
        return (digest, .object(["digest": .string(digest), "size": .int(Int64(n)), "modality": .string("CT"),
                                 "subject": .string("S\(n % 3)")]))
    }

    @Test func signedDigestAndTamperDetection() throws {
        let entries = (1...5).map(entry).sorted { $0.digest < $1.digest }
        var leaves: [UInt8] = []
        var summary = SnapshotSummary()
        for item in entries {
            Merkle.appendLeafHash(of: item.entry.canonicalBytes(), to: &leaves)
            summary.add(item.entry)
        }
        let snapshot = try Snapshot.make(node: "n1", dataset: "ct", metadata: ["title": .string("CT")], seq: 1, parent: nil,
                                         leaves: leaves, summary: summary, added: entries.map(\.entry), removed: [], key: key, keyID: "k")
        let received = try ReceivedSnapshot(canonical: snapshot.canonicalBytes)
        #expect(received.signatureIsValid(for: key.publicKey))
        #expect(!received.signatureIsValid(for: Curve25519.Signing.PrivateKey().publicKey))
        #expect(received.digest == snapshot.digest && received.seq == 1 && received.added.count == 5)
        #expect(try received.strings(inEntry: received.added[0], keys: ["modality", "size", "nope"]) == ["CT", nil, nil])
        #expect(snapshot.document["summary"]?["subjects"]?.int == 3)
        #expect(snapshot.document["summary"]?["by_modality"]?["CT"]?.int == 5)
        guard case .object(var members) = snapshot.document else { Issue.record("not an object"); return }
        members["seq"] = .int(2)
        let tampered = Snapshot(document: .object(members))
        #expect(!(try ReceivedSnapshot(canonical: tampered.canonicalBytes).signatureIsValid(for: key.publicKey)))
    }
}

@Suite struct CanonicalScannerTests {
    func accepts(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBufferPointer { (try? CanonicalScanner($0).validateDocument()) != nil }
    }

    /// The scanner accepts exactly what parsing and re-encoding leaves unchanged: checked on random
    /// canonical documents and on every kind of single-byte damage to them.
    @Test func acceptsExactlyTheCanonicalForm() throws {
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array("aZ9 \"\\/\n\t\u{8}\u{7f}é€😀\u{1}\u{1f}")
        func randomValue(_ depth: Int) -> JSONValue {
            switch Int.random(in: 0..<(depth > 3 ? 4 : 6), using: &rng) {
            case 0: return .int([Int64.min, Int64.max, 0, -1, 10, Int64.random(in: -1_000_000...1_000_000, using: &rng)].randomElement(using: &rng)!)
            case 1: return .string(String((0..<Int.random(in: 0...8, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }))
            case 2: return .bool(Bool.random(using: &rng))
            case 3: return .null
            case 4: return .array((0..<Int.random(in: 0...4, using: &rng)).map { _ in randomValue(depth + 1) })
            default:
                var members: [String: JSONValue] = [:]
                for _ in 0..<Int.random(in: 0...4, using: &rng) {
                    members[String((0..<Int.random(in: 0...3, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! })] = randomValue(depth + 1)
                }
                return .object(members)
            }
        }
        let replacements = Array(" \t,:[]{}\"\\-0159aeEuU.".utf8) + [0x00, 0x7f, 0xc3, 0xff]
        var accepted = 0, refused = 0
        for _ in 0..<400 {
            let canonical = randomValue(0).canonicalBytes()
            #expect(accepts(canonical), "\(String(decoding: canonical, as: UTF8.self))")
            for _ in 0..<20 {
                var damaged = canonical
                let position = Int.random(in: 0...damaged.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: damaged.insert(replacements.randomElement(using: &rng)!, at: position)
                case 1 where position < damaged.count: damaged.remove(at: position)
                default: if position < damaged.count { damaged[position] = replacements.randomElement(using: &rng)! }
                }
                let reference = (try? JSONValue.parse(damaged).canonicalBytes()) == damaged
                #expect(accepts(damaged) == reference, "\(String(decoding: damaged, as: UTF8.self))")
                if reference { accepted += 1 } else { refused += 1 }
            }
        }
        #expect(accepted > 100 && refused > 1_000)
    }

    @Test func refusesEachNonCanonicalSpelling() {
        for text in [#"{"b":1,"a":2}"#, #"{"a":1,"a":1}"#, #"{ "a":1}"#, "[1, 2]", "01", "-0", "1.0", "1e2", #""\/""#, #""\u0041""#,
                     #""\u000a""#, #""\u001F""#, "9223372036854775808", "-9223372036854775809", "[", "{}x", "nul", ""] {
            #expect(!accepts(Array(text.utf8)), "\(text)")
        }
        for text in [#"{"a":1,"b":[true,false,null]}"#, #""\u001f\n""#, "-9223372036854775808", "9223372036854775807", #"{"":0}"#] {
            #expect(accepts(Array(text.utf8)), "\(text)")
        }
        #expect(!accepts([0x22, 0xC3, 0x28, 0x22]))
    }
}

@Suite struct JSONParserTests {
    /// Random documents serialised by Foundation (its own escapes and spacing) parse to the same
    /// values through both decoders, and round-trip through the canonical form.
    @Test func agreesWithFoundation() throws {
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array("aZ9 \"\\/\n\té€😀\u{1}")
        func randomValue(_ depth: Int) -> Any {
            switch Int.random(in: 0..<(depth > 3 ? 4 : 6), using: &rng) {
            case 0: return Int64.random(in: -1_000_000...1_000_000, using: &rng)
            case 1: return String((0..<Int.random(in: 0...12, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! })
            case 2: return Bool.random(using: &rng)
            case 3: return NSNull()
            case 4: return (0..<Int.random(in: 0...4, using: &rng)).map { _ in randomValue(depth + 1) }
            default:
                var object: [String: Any] = [:]
                for i in 0..<Int.random(in: 0...4, using: &rng) { object["k\(i)é"] = randomValue(depth + 1) }
                return object
            }
        }
        for _ in 0..<500 {
            let data = try JSONSerialization.data(withJSONObject: ["root": randomValue(0)], options: [.prettyPrinted])
            let ours = try JSONValue.parse(data)
            #expect(ours == (try JSONDecoder().decode(JSONValue.self, from: data)))
            #expect(try JSONValue.parse(ours.canonicalBytes()) == ours)
        }
    }

    @Test func refusesMalformedText() throws {
        let bad = [#"{"a":1,"a":2}"#, #"{"a":}"#, "[1,]", #""\u12""#, "\"a\u{1}\"", "[1] 2", #"{"a":1e5}"#, "", #""\ud800""#,
                   String(repeating: "[", count: 100) + String(repeating: "]", count: 100)]
        for text in bad {
            #expect(throws: (any Error).self, "\(text.prefix(20))") { try JSONValue.parse(Data(text.utf8)) }
        }
        #expect(try JSONValue.parse(Data(#""\ud83d\ude00 \u00e9""#.utf8)) == .string("😀 é"))
    }
}

/// Foundation's decoder as the reference the parser is checked against (test-only: Cairn's code
/// parses with `JSONValue.parse`).
extension JSONValue: Decodable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null; return }
        if let value = try? container.decode(Bool.self) { self = .bool(value); return }
        if let value = try? container.decode(Int64.self) { self = .int(value); return }
        if let value = try? container.decode(String.self) { self = .string(value); return }
        if let value = try? container.decode([JSONValue].self) { self = .array(value); return }
        if let value = try? container.decode([String: JSONValue].self) { self = .object(value); return }
        throw DecodingError.dataCorruptedError(in: container, debugDescription: "not canonical JSON (floats are not allowed)")
    }
}
