import CairnFoundation
@testable import CairnHub
import CairnSearch
import CairnTestSupport
import Crypto
import Foundation
import Testing

/// The hub's count query under the disclosure rule: no answer under `min_count` people, and no
/// two neighbouring answers (a criterion or a value apart) whose difference is a smaller group.
@Suite struct CountDisclosureTests {
    /// One entry per (subject, study): subject `s`, of the given sex and modality.
    static func entry(_ n: Int, subject: Int, sex: String, modality: String, bodyPart: String = "CHEST") -> JSONValue {
        .object([
            "digest": .string("sha256:" + Hex.encode(SHA256.hash(data: Array("entry \(n)".utf8)))), "size": .int(1),
            "subject": .string("S\(subject)"), "study_uid": .string("1.2.\(subject)"), "modality": .string(modality),
            "body_part": .string(bodyPart), "manufacturer": .string("GE"), "sex": .string(sex),
        ])
    }

    static func hub(with entries: [JSONValue]) throws -> HubIndex {
        let index = try HubIndex(path: temporaryPath())
        var node = ModelNode(id: "n1", dataset: "a")
        try index.enroll(node: node.id, publicKey: node.publicKey)
        let snapshot = try node.publish(adding: entries, removing: [])
        #expect(try index.intake(node: node.id, dataset: node.dataset, claimedDigest: snapshot.digest, body: snapshot.canonicalBytes) == .applied)
        return index
    }

    static func released(_ index: HubIndex, _ criteria: [String: [String]], minCount: Int = 5) throws -> Int? {
        try index.disclosedCount(CountCriteria(values: criteria), rule: DisclosureRule(minCount: minCount)).first?.subjects
    }

    /// The black-box finding: 21 people, one of them a woman. All 21 may be counted, but not the
    /// 20 men (21 - 20 is the woman), nor "men or women" beside "men".
    @Test func neighbouringAnswersCannotBeSubtracted() throws {
        let entries = (0..<21).map { Self.entry($0, subject: $0, sex: $0 == 0 ? "F" : "M", modality: "MR") }
        let index = try Self.hub(with: entries)
        #expect(try Self.released(index, [:]) == 21)
        #expect(try Self.released(index, ["sex": ["M"]]) == nil)
        #expect(try Self.released(index, ["sex": ["F"]]) == nil)
        #expect(try Self.released(index, ["sex": ["M", "F"]]) == nil)
        // Every MR is everyone: no difference, so the count goes out.
        #expect(try Self.released(index, ["modality": ["MR"]]) == 21)
        // Under the threshold at all: nothing.
        #expect(try Self.released(index, [:], minCount: 22) == nil)
    }

    /// The second review: 22 people, 10 with a head study, 10 with a chest study, 2 women with a
    /// breast MR. Releasing both ten-person cells beside the total leaves the two over; one of
    /// them is withheld (the same one every time), and every query about the two.
    @Test func releasedSiblingsCannotBeSubtractedFromTheirTotal() throws {
        var entries: [JSONValue] = []
        for p in 0..<22 {
            let (part, modality, sex) = p < 10 ? ("HEAD", "CT", "M") : p < 20 ? ("CHEST", "CT", "M") : ("BREAST", "MR", "F")
            entries.append(Self.entry(p, subject: p, sex: sex, modality: modality, bodyPart: part))
        }
        let index = try Self.hub(with: entries)
        #expect(try Self.released(index, [:]) == 22)
        let head = try Self.released(index, ["body_part": ["HEAD"]]), chest = try Self.released(index, ["body_part": ["CHEST"]])
        #expect(head == 10 && chest == nil, "the first of equal cells by name, CHEST, is withheld")
        for criteria in [["body_part": ["BREAST"]], ["modality": ["MR"]], ["sex": ["F"]], ["body_part": ["HEAD", "CHEST"]]] {
            #expect(try Self.released(index, criteria) == nil, "\(criteria)")
        }
        // 22 - 10 = 12 people (chest and breast) is no small group.
        #expect(try Self.released(index, ["modality": ["CT"]]) == nil, "CT is 20 of 22: 2 left over")
    }

    /// Seeded random small datasets and queries: every count released has at least min_count
    /// people, and differs from each neighbouring query's brute-force count by 0 or at least min_count.
    @Test func randomQueriesNeverIsolateASmallGroup() throws {
        let seed = UInt64.random(in: 1...UInt64.max)
        print("CountDisclosureTests seed \(seed)")
        var rng = SeededRandom(seed: seed)
        let sexes = ["F", "M", "O"], modalities = ["CT", "MR", "PT"]
        for round in 0..<6 {
            let people = Int.random(in: 3...30, using: &rng)
            var entries: [JSONValue] = []
            for subject in 0..<people {
                let sex = sexes.randomElement(using: &rng)!
                for _ in 0..<Int.random(in: 1...2, using: &rng) {
                    entries.append(Self.entry(entries.count, subject: subject, sex: sex, modality: modalities.randomElement(using: &rng)!))
                }
            }
            let index = try Self.hub(with: entries)
            var node = ModelNode(id: "n1", dataset: "a")
            for entry in entries { node.entries[entry["digest"]!.string!] = entry }
            for _ in 0..<25 {
                var values: [String: [String]] = [:]
                if Bool.random(using: &rng) { values["sex"] = Array(sexes.shuffled(using: &rng).prefix(Int.random(in: 1...2, using: &rng))) }
                if Bool.random(using: &rng) { values["modality"] = Array(modalities.shuffled(using: &rng).prefix(Int.random(in: 1...2, using: &rng))) }
                let minCount = Int.random(in: 2...6, using: &rng)
                guard let count = try Self.released(index, values, minCount: minCount) else { continue }
                #expect(count >= minCount, "seed \(seed) round \(round) \(values)")
                for neighbour in try CountCriteria(values: values).neighbours {
                    let other = bruteForceCount([node], neighbour.values)["n1/a"]?.subjects ?? 0
                    let difference = abs(other - count)
                    #expect(difference == 0 || difference >= minCount, "seed \(seed) round \(round) \(values) vs \(neighbour.values)")
                }
            }
        }
    }
}
