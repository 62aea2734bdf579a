import CairnFoundation

/// The answer Focus passes back to the EUCAIM UI (the shape of the reference provider and of
/// Focus's own EUCAIM SQL endpoint): one collection per dataset with instances meeting the query,
/// plus totals. Rows whose subjects or studies are above zero but below `minCount` are withheld:
/// counts `null`, no ages or breakdowns, `"suppressed": true`, and left out of the totals.
public enum SearchAnswer {
    public static func json(_ rows: [SearchRow], ignored: [IgnoredCondition], minCount: Int) -> JSONValue {
        func small(_ count: Int) -> Bool { count > 0 && count < minCount }
        var subjects = 0, studies = 0, suppressed = 0
        let collections: [JSONValue] = rows.map { row in
            var item: [String: JSONValue] = [
                "id": .string(row.dataset.id), "name": .string(row.dataset.name), "description": .string(row.dataset.description),
            ]
            if let node = row.dataset.node { item["node"] = .string(node) }
            if small(row.subjects) || small(row.studies) {
                suppressed += 1
                item["subjects_count"] = .null
                item["studies_count"] = .null
                item["age_range"] = .object(["min": .null, "max": .null])
                item["gender"] = .array([])
                item["modalities"] = .array([])
                item["body_parts"] = .array([])
                item["suppressed"] = .bool(true)
                return .object(item)
            }
            subjects += row.subjects
            studies += row.studies
            item["subjects_count"] = .int(Int64(row.subjects))
            item["studies_count"] = .int(Int64(row.studies))
            item["age_range"] = row.ageRange.map {
                .object(["min": .int(Int64($0.min.rounded(.down))), "max": .int(Int64($0.max.rounded(.down)))])
            } ?? .object(["min": .null, "max": .null])
            item["gender"] = .array(row.sexes.sorted().map { .string(EucaimCodes.sexNames[$0] ?? $0) })
            item["modalities"] = .array(row.modalities.sorted().map(JSONValue.string))
            item["body_parts"] = .array(row.bodyParts.sorted().map(JSONValue.string))
            item["suppressed"] = .bool(false)
            return .object(item)
        }
        return .object([
            "collections": .array(collections),
            "total": .object(["subjects_count": .int(Int64(subjects)), "studies_count": .int(Int64(studies)),
                              "suppressed_collections": .int(Int64(suppressed))]),
            "ignored": .array(ignored.map { .object(["key": .string($0.key), "reason": .string($0.reason)]) }),
            "min_count": .int(Int64(minCount)),
        ])
    }
}
