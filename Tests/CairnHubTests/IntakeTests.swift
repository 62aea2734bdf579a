import CairnFoundation
@testable import CairnHub
import CairnManifest
import Crypto
import Foundation
import GRDB
import Testing

/// A node's side of the conversation: its published entries and a key, making each next snapshot.
struct ModelNode {
    let id: String
    let dataset: String
    let key = Curve25519.Signing.PrivateKey()
    var entries: [String: JSONValue] = [:]
    var head: Snapshot?
    var cancerType = "lung"

    init(id: String, dataset: String) {
        self.id = id
        self.dataset = dataset
    }

    var publicKey: String { Base64URL.encode(key.publicKey.rawRepresentation) }

    static func entry(_ n: Int, subjects: Int, variant: Int = 0) -> JSONValue {
        let digest = "sha256:" + Hex.encode(SHA256.hash(data: Array("blob \(n)".utf8)))
        return .object([
            "digest": .string(digest), "size": .int(Int64(n)), "subject": .string("S\(n % subjects)"),
            "study_uid": .string("1.2.\(n % (subjects * 2))"), "modality": .string(["CT", "MR", "PT"][(n + variant) % 3]),
            "body_part": .string(["CHEST", "HEAD"][n % 2]), "manufacturer": .string(["GE", "SIEMENS", "Philips"][n % 3]),
            "sex": .string(n % 4 == 0 ? "F" : "M"),
        ])
    }

    /// Applies the change and signs the next snapshot over it.
    mutating func publish(adding added: [JSONValue], removing removed: [String]) throws -> Snapshot {
        for digest in removed { entries[digest] = nil }
        for entry in added { entries[entry["digest"]!.string!] = entry }
        var leaves: [UInt8] = []
        var summary = SnapshotSummary()
        for (_, entry) in entries.sorted(by: { $0.key < $1.key }) {
            Merkle.appendLeafHash(of: entry.canonicalBytes(), to: &leaves)
            summary.add(entry)
        }
        let snapshot = try Snapshot.make(
            node: id, dataset: dataset, metadata: ["cancer_type": .string(cancerType)], seq: (head?.seq ?? 0) + 1,
            parent: head?.digest, leaves: leaves, summary: summary,
            added: added.sorted { $0["digest"]!.string! < $1["digest"]!.string! }, removed: removed.sorted(), key: key, keyID: "k")
        head = snapshot
        return snapshot
    }
}

extension Snapshot { var seq: Int64 { document["seq"]?.int ?? 0 } }

func bruteForceCount(_ nodes: [ModelNode], _ criteria: [String: [String]]) -> [String: (subjects: Int, studies: Int)] {
    var result: [String: (subjects: Int, studies: Int)] = [:]
    for node in nodes {
        if let types = criteria["cancer_type"], !types.contains(node.cancerType) { continue }
        let matching = node.entries.values.filter { entry in
            ["sex", "modality", "body_part", "manufacturer"].allSatisfy { key in
                criteria[key].map { $0.contains(entry[key]?.string ?? "") } ?? true
            }
        }
        if matching.isEmpty { continue }
        result["\(node.id)/\(node.dataset)"] = (Set(matching.compactMap { $0["subject"]?.string }).count,
                                               Set(matching.compactMap { $0["study_uid"]?.string }).count)
    }
    return result
}

func hubCount(_ index: HubIndex, _ criteria: [String: [String]]) throws -> [String: (subjects: Int, studies: Int)] {
    var result: [String: (subjects: Int, studies: Int)] = [:]
    for row in try index.count(CountCriteria(values: criteria)) { result["\(row.node)/\(row.dataset)"] = (row.subjects, row.studies) }
    return result
}

func sameCounts(_ a: [String: (subjects: Int, studies: Int)], _ b: [String: (subjects: Int, studies: Int)]) -> Bool {
    a.count == b.count && a.allSatisfy { key, value in b[key].map { $0 == value } ?? false }
}

func temporaryPath() -> String {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-hub-\(UUID().uuidString)")
    try! FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    return directory.appendingPathComponent("hub.sqlite").path
}

@Suite struct IntakeTests {
    let criteriaSamples: [[String: [String]]] = [
        [:], ["modality": ["CT"]], ["modality": ["CT", "MR"], "sex": ["F"]], ["body_part": ["HEAD"], "manufacturer": ["GE", "Philips"]],
        ["cancer_type": ["breast"]], ["cancer_type": ["lung"], "sex": ["M"], "modality": ["PT"]], ["modality": ["XA"]],
    ]

    /// Random adds, removals and attribute changes over several snapshots from two nodes: after
    /// each intake the hub's counts equal a brute-force count of the nodes' entries, and a hub
    /// reopened from disk (counts loaded from the facets table) agrees with the one kept in step.
    @Test func countsFollowRandomDeltas() throws {
        let path = temporaryPath()
        let index = try HubIndex(path: path)
        var nodes = [ModelNode(id: "n1", dataset: "a"), ModelNode(id: "n2", dataset: "b")]
        nodes[1].cancerType = "breast"
        for node in nodes { try index.enroll(node: node.id, publicKey: node.publicKey) }
        var rng = SystemRandomNumberGenerator()
        var next = 0
        for round in 0..<12 {
            for n in nodes.indices {
                let existing = Array(nodes[n].entries.keys)
                let removed = round == 0 ? [] : Array(existing.shuffled(using: &rng).prefix(Int.random(in: 0...20, using: &rng)))
                var added = (0..<Int.random(in: 1...60, using: &rng)).map { _ in next += 1; return ModelNode.entry(next, subjects: 17) }
                // Some kept entries change an attribute (same digest, new modality): a replacement.
                for digest in existing.filter({ !removed.contains($0) }).prefix(3) {
                    guard case .object(var members) = nodes[n].entries[digest]! else { continue }
                    members["modality"] = .string(["CT", "MR", "PT", "US"].randomElement(using: &rng)!)
                    added.append(.object(members))
                }
                let snapshot = try nodes[n].publish(adding: added, removing: removed)
                #expect(try index.intake(node: nodes[n].id, dataset: nodes[n].dataset, claimedDigest: snapshot.digest,
                                         body: snapshot.canonicalBytes) == .applied)
            }
            for criteria in criteriaSamples {
                #expect(sameCounts(try hubCount(index, criteria), bruteForceCount(nodes, criteria)), "round \(round) \(criteria)")
            }
        }
        let reopened = try HubIndex(path: path)
        for criteria in criteriaSamples {
            #expect(sameCounts(try hubCount(reopened, criteria), bruteForceCount(nodes, criteria)), "reopened \(criteria)")
        }
        let snapshot = nodes[0].head!
        #expect(try reopened.intake(node: "n1", dataset: "a", claimedDigest: snapshot.digest, body: snapshot.canonicalBytes) == .alreadyHead)
    }

    /// Each refusal leaves the hub's copy, head and counts as they were.
    @Test func refusalsApplyNothing() throws {
        let index = try HubIndex(path: temporaryPath())
        var node = ModelNode(id: "n1", dataset: "a")
        try index.enroll(node: node.id, publicKey: node.publicKey)
        let first = try node.publish(adding: (1...30).map { ModelNode.entry($0, subjects: 7) }, removing: [])
        _ = try index.intake(node: "n1", dataset: "a", claimedDigest: first.digest, body: first.canonicalBytes)
        let before = try hubCount(index, [:])

        func refused(_ document: JSONValue, _ check: (IntakeError) -> Bool) {
            let bytes = document.canonicalBytes()
            let digest = "sha256:" + Hex.encode(SHA256.hash(data: bytes))
            #expect(throws: IntakeError.self) { _ = try index.intake(node: "n1", dataset: "a", claimedDigest: digest, body: bytes) }
            do { _ = try index.intake(node: "n1", dataset: "a", claimedDigest: digest, body: bytes) } catch let error as IntakeError {
                #expect(check(error), "\(error)")
            } catch { Issue.record("\(error)") }
        }
        func signed(_ members: [String: JSONValue]) throws -> JSONValue {
            var body = members
            body["signature"] = nil
            let signature = try node.key.signature(for: JSONValue.object(body).canonicalBytes())
            body["signature"] = .object(["alg": .string("EdDSA"), "kid": .string("k"), "sig": .string(Base64URL.encode(signature))])
            return .object(body)
        }
        var probe = node
        let second = try probe.publish(adding: (31...40).map { ModelNode.entry($0, subjects: 7) }, removing: [])
        guard case .object(let members) = second.document else { Issue.record("not an object"); return }
        // Added entries out of digest order, validly signed.
        var unordered = members
        unordered["added"] = .array(members["added"]!.array!.reversed())
        refused(try signed(unordered)) { if case .malformed(let reason) = $0 { reason.contains("order") } else { false } }
        // The same entry twice.
        var repeated = members
        repeated["added"] = .array(members["added"]!.array! + [members["added"]!.array!.last!])
        refused(try signed(repeated)) { if case .malformed = $0 { true } else { false } }
        // An added entry that is not an object.
        var notAnObject = members
        notAnObject["added"] = .array([.string("sha256:" + String(repeating: "1", count: 64))])
        refused(try signed(notAnObject)) { if case .malformed = $0 { true } else { false } }
        // A removal of something the hub does not hold.
        var unknown = members
        unknown["removed"] = .array([.string("sha256:" + String(repeating: "0", count: 64))])
        refused(try signed(unknown)) { if case .unknownRemoval = $0 { true } else { false } }
        // A root that does not match the delta.
        var wrongRoot = members
        wrongRoot["entries_root"] = .string(String(repeating: "a", count: 64))
        refused(try signed(wrongRoot)) { if case .rootMismatch = $0 { true } else { false } }
        // Not signed by the enrolled key.
        var forged = members
        forged["seq"] = .int(2)
        refused(.object(forged.merging(["summary": .object([:])]) { $1 })) { $0 == .badSignature }
        // Whitespace: the same document, not in canonical form.
        let spaced = Array(second.canonicalBytes.prefix(1)) + Array(" ".utf8) + Array(second.canonicalBytes.dropFirst())
        #expect(throws: IntakeError.self) {
            _ = try index.intake(node: "n1", dataset: "a", claimedDigest: "sha256:" + Hex.encode(SHA256.hash(data: spaced)), body: spaced)
        }
        #expect(try index.head(node: "n1", dataset: "a")?.digest == first.digest)
        #expect(sameCounts(try hubCount(index, [:]), before))
        // And the untouched second snapshot still applies on top.
        #expect(try index.intake(node: "n1", dataset: "a", claimedDigest: second.digest, body: second.canonicalBytes) == .applied)
    }

    /// A hub created before v4 (entries stored as JSON) keeps its datasets: after the migration the
    /// next snapshot, with removals, is accepted against the migrated leaves, and counts hold.
    @Test func migratesEntriesStoredAsJSON() throws {
        let path = temporaryPath()
        var node = ModelNode(id: "n1", dataset: "a")
        let first = try node.publish(adding: (1...25).map { ModelNode.entry($0, subjects: 5) }, removing: [])
        do {
            let pool = try DatabasePool(path: path)
            try HubIndex.migrator.migrate(pool, upTo: "v3-facet-indexes")
            try pool.write { db in
                try db.execute(sql: "INSERT INTO nodes VALUES ('n1', ?, 0)", arguments: [node.publicKey])
                try db.execute(sql: """
                    INSERT INTO heads VALUES ('n1', 'a', 1, ?, ?, 25, '{"cancer_type":"lung"}', '{}', NULL, 0)
                    """, arguments: [first.digest, first.document["entries_root"]!.string!])
                for entry in node.entries.values {
                    let values = ["subject", "study_uid", "modality", "body_part", "manufacturer", "sex"].map { entry[$0]?.string }
                    try db.execute(sql: "INSERT INTO entries VALUES ('n1', 'a', ?, ?, ?, ?, ?, ?, ?, ?)",
                                   arguments: StatementArguments([entry["digest"]!.string!] + values + [Data(entry.canonicalBytes())]))
                }
                try db.execute(sql: """
                    INSERT INTO facets SELECT node, dataset, coalesce(subject, ''), coalesce(study_uid, ''), coalesce(modality, ''),
                        coalesce(body_part, ''), coalesce(manufacturer, ''), coalesce(sex, ''), count(*) FROM entries GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
                    """)
            }
        }
        let index = try HubIndex(path: path)
        #expect(sameCounts(try hubCount(index, ["modality": ["CT"]]), bruteForceCount([node], ["modality": ["CT"]])))
        let second = try node.publish(adding: (26...30).map { ModelNode.entry($0, subjects: 5) },
                                      removing: Array(node.entries.keys.sorted().prefix(4)))
        #expect(try index.intake(node: "n1", dataset: "a", claimedDigest: second.digest, body: second.canonicalBytes) == .applied)
        for criteria in criteriaSamples {
            #expect(sameCounts(try hubCount(index, criteria), bruteForceCount([node], criteria)), "\(criteria)")
        }
    }
}
