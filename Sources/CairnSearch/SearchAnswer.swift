import CairnFoundation

/// The answer Focus passes back to the EUCAIM UI (the shape of the reference provider and of
/// Focus's own EUCAIM SQL endpoint): one collection per dataset with at least `minCount` subjects
/// and studies meeting the query, plus totals.
public enum SearchAnswer {
    public static func json(_ rows: [SearchRow], ignored: [IgnoredCondition], minCount: Int) -> JSONValue {
        // Rows under min_count are left out altogether, as empty ones are: listing them withheld
        // would still say that one to min_count - 1 subjects match.
        let rule = DisclosureRule(minCount: minCount)
        let shown = rows.filter { rule.releases($0.subjects) && $0.studies >= minCount }
        let collections: [JSONValue] = shown.map { row in
            var item: [String: JSONValue] = [
                "id": .string(row.dataset.id), "name": .string(row.dataset.name), "description": .string(row.dataset.description),
                "subjects_count": .int(Int64(row.subjects)), "studies_count": .int(Int64(row.studies)),
                "gender": .array(row.sexes.sorted().map { .string(EucaimCodes.sexNames[$0] ?? $0) }),
                "modalities": .array(row.modalities.sorted().map(JSONValue.string)),
                "body_parts": .array(row.bodyParts.sorted().map(JSONValue.string)),
            ]
            if let node = row.dataset.node { item["node"] = .string(node) }
            // A withheld range is left out, as every withheld value is (DisclosureRule).
            if let range = row.ageRange {
                item["age_range"] = .object(["min": .int(Int64(range.min.rounded(.down))), "max": .int(Int64(range.max.rounded(.down)))])
            }
            return .object(item)
        }
        return .object([
            "collections": .array(collections),
            "total": .object(["subjects_count": .int(Int64(shown.reduce(0) { $0 + $1.subjects })),
                              "studies_count": .int(Int64(shown.reduce(0) { $0 + $1.studies }))]),
            "ignored": .array(ignored.map { .object(["key": .string($0.key), "reason": .string($0.reason)]) }),
            "min_count": .int(Int64(minCount)),
        ])
    }
}
