/// The federation's one rule for what may leave a node or the hub: no group of fewer than
/// `minCount` people is visible. Every released number is a count of people, or is derived only
/// from a cell of at least `minCount` people; every breakdown value, list value and range end needs
/// `minCount` people behind it; what is withheld is left out (a key shown as null still says the
/// value exists). Counts of studies, series, instances and bytes go out only beside a releasable
/// count of people. The hub's count query also withholds an answer that differs from a
/// neighbouring query's by a small group (`HubIndex.disclosedCount`). Known limit: answers further
/// apart can still be combined; the rule bounds each answer and its neighbours, not every combination.
public struct DisclosureRule: Sendable, Equatable {
    public let minCount: Int

    public init(minCount: Int) { self.minCount = max(1, minCount) }

    /// The count when it may be released: at least `minCount` people.
    public func people(_ count: Int) -> Int? { count >= minCount ? count : nil }

    /// Whether a group of `count` people may be shown at all.
    public func releases(_ count: Int) -> Bool { count >= minCount }

    /// The values with at least `minCount` people, with their counts; the rest are left out.
    /// Beside a released `total` of people, what is left out can be had by subtraction (12 people,
    /// 8 of them women: 4 are not): while the people not covered by the released values are one to
    /// minCount - 1, the smallest released value is withheld too (complementary suppression; of
    /// equal ones the first by key, so the same data always gives the same answer: were it chosen
    /// at random, asking twice could release both).
    public func breakdown<Key: Hashable & Comparable>(_ peopleByValue: [Key: Int], total: Int? = nil) -> [Key: Int] {
        var shown = peopleByValue.filter { $0.value >= minCount }
        guard let total else { return shown }
        while !shown.isEmpty {
            let rest = total - shown.values.reduce(0, +)
            guard rest > 0 && rest < minCount,
                  let smallest = shown.min(by: { ($0.value, $0.key) < ($1.value, $1.key) }) else { break }
            shown.removeValue(forKey: smallest.key)
        }
        return shown
    }

    /// A range whose ends each have at least `minCount` people at or beyond them: from the
    /// minCount-th smallest value to the minCount-th largest, one value per person. Under
    /// 2 x minCount - 1 people the two ends would cross, and any range drawn between them would
    /// have an end with fewer people behind it than the rule allows: nothing is released.
    public func range(_ values: [Double]) -> (min: Double, max: Double)? {
        guard values.count >= 2 * minCount - 1 else { return nil }
        let sorted = values.sorted()
        let low = sorted[minCount - 1], high = sorted[sorted.count - minCount]
        return low <= high ? (low, high) : nil
    }
}
