import CairnTestSupport
import Testing
@testable import CairnSearch

/// The one disclosure rule every count and value leaving a node or the hub goes through.
@Suite struct DisclosureRuleTests {
    @Test func rangesNeverShowAnExtremeOfASmallGroup() {
        let rule = DisclosureRule(minCount: 5)
        // The hostile probe's five patients: 23 and 97 were shown; now nothing is.
        #expect(rule.range([23, 31, 44, 58, 97]) == nil)
        #expect(rule.range([23, 31, 44, 58, 97, 60]) == nil)
        // Nine people: both ends are the median, with five people at or beyond each.
        let nine: [Double] = [23, 31, 44, 58, 97, 60, 61, 62, 63]
        #expect(rule.range(nine).map { [$0.min, $0.max] } == [60, 60])
        #expect(DisclosureRule(minCount: 1).range([23, 97]).map { [$0.min, $0.max] } == [23, 97])
    }

    @Test func countsAndBreakdownsNeedMinCountPeople() {
        let rule = DisclosureRule(minCount: 5)
        #expect(rule.people(4) == nil && rule.people(5) == 5)
        #expect(rule.breakdown(["F": 4, "M": 7, "O": 0]) == ["M": 7])
        #expect(DisclosureRule(minCount: 0).minCount == 1)
    }

    /// Seeded random groups: whatever the rule releases has at least minCount people behind it.
    @Test func randomGroupsRevealNoSmallCell() {
        let seed = UInt64.random(in: 0...UInt64.max)
        print("DisclosureRuleTests seed \(seed)")
        var random = SeededRandom(seed: seed)
        for _ in 0..<2000 {
            let minCount = Int.random(in: 1...10, using: &random)
            let ages = (0..<Int.random(in: 0...30, using: &random)).map { _ in Double(Int.random(in: 0...110, using: &random)) }
            let rule = DisclosureRule(minCount: minCount)
            if let range = rule.range(ages) {
                #expect(ages.filter { $0 <= range.min }.count >= minCount, "seed \(seed)")
                #expect(ages.filter { $0 >= range.max }.count >= minCount, "seed \(seed)")
            } else {
                #expect(ages.count < 2 * minCount - 1, "seed \(seed): a group that could show a range showed none")
            }
            var byValue: [String: Int] = [:]
            for _ in 0..<Int.random(in: 0...20, using: &random) { byValue["v\(Int.random(in: 0...5, using: &random))", default: 0] += 1 }
            #expect(rule.breakdown(byValue).values.allSatisfy { $0 >= minCount }, "seed \(seed)")
        }
    }
}
