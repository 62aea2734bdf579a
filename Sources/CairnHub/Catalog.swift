import CairnFoundation
import CairnManifest
import CairnSearch
import Foundation
import GRDB

/// One dataset as the federation catalogue lists it.
public struct CatalogDataset: Sendable {
    public var node: String
    public var dataset: String
    public var seq: Int64
    public var digest: String
    public var entries: Int
    public var metadata: JSONValue
    public var summary: JSONValue
    public var createdAt: String?
    public var updatedAt: Date

    init(row: Row) throws {
        node = row["node"]
        dataset = row["dataset"]
        seq = row["seq"]
        digest = row["digest"]
        entries = row["entries"]
        metadata = try JSONValue.parse(Data((row["metadata"] as String).utf8))
        summary = try JSONValue.parse(Data((row["summary"] as String).utf8))
        createdAt = row["created_at"]
        updatedAt = Date(timeIntervalSince1970: row["updated_at"])
    }

    /// Whether the snapshot's entry count may be shown (only beside a releasable subject count).
    var entriesReleased = false

    /// The dataset as the disclosure rule lets it leave the hub. The summary is recomputed from
    /// the entries the hub holds (`people`), never taken from what the snapshot says of itself:
    /// subjects, and beside them (only when at least `minCount` subjects) studies, instances and
    /// per value of modality, body part, manufacturer and sex the number of **subjects** with it,
    /// each value listed only with `minCount` subjects. A dataset under `minCount` says only
    /// `"suppressed": true`; withheld keys are left out. Series and byte counts (in the snapshot's
    /// own summary) are not recomputed from entries, so they are not shown.
    func disclosed(_ people: FacetCounts.DatasetPeople?, rule: DisclosureRule) -> CatalogDataset {
        var copy = self
        guard let people, let subjects = rule.people(people.subjects) else {
            copy.summary = .object(["suppressed": .bool(true)])
            copy.entriesReleased = false
            return copy
        }
        var fields: [String: JSONValue] = [
            "subjects": .int(Int64(subjects)), "studies": .int(Int64(people.studies)), "instances": .int(people.instances),
        ]
        for key in ["modality", "body_part", "manufacturer", "sex"] {
            let shown = rule.breakdown(people.subjectsWith[key] ?? [:], total: subjects)
            fields["by_" + key] = .object(shown.mapValues { .int(Int64($0)) })
        }
        copy.summary = .object(fields)
        copy.entriesReleased = true
        return copy
    }

    public var json: JSONValue {
        var fields: [String: JSONValue] = ["id": .string(dataset), "node": .string(node), "seq": .int(seq), "snapshot": .string(digest),
                                           "metadata": metadata, "summary": summary]
        if entriesReleased { fields["entries"] = .int(Int64(entries)) }
        if let createdAt { fields["issued"] = .string(createdAt) }
        return .object(fields)
    }
}

/// Count-query criteria: AND across keys, OR within one key's values.
public struct CountCriteria: Sendable, Equatable {
    public static let keys = ["sex", "cancer_type", "modality", "body_part", "manufacturer"]
    public var values: [String: [String]]

    public init(values: [String: [String]]) throws {
        for key in values.keys where !Self.keys.contains(key) {
            throw CatalogError.badCriteria("unknown criterion '\(key)'; use \(Self.keys.joined(separator: ", "))")
        }
        self.values = values.filter { !$0.value.isEmpty }
    }

    /// The queries one step wider: each criterion dropped, and each value of a criterion with
    /// several dropped (the answers a caller could subtract this one's from, or this one's from them).
    var neighbours: [CountCriteria] {
        var out: [CountCriteria] = []
        for (key, list) in values {
            var wider = self
            wider.values.removeValue(forKey: key)
            out.append(wider)
            guard list.count > 1 else { continue }
            for index in list.indices {
                var narrower = self
                narrower.values[key]?.remove(at: index)
                out.append(narrower)
            }
        }
        return out
    }
}

public enum CatalogError: Error, CustomStringConvertible {
    case badCriteria(String)
    public var description: String {
        switch self { case .badCriteria(let reason): reason }
    }
}

extension HubIndex {
    /// Datasets as the disclosure rule lets them out, those whose released breakdowns have the
    /// filters' values (a filter key may repeat: OR). A filter on modality, body part, manufacturer
    /// or sex matches only a value held by at least `minCount` subjects, so no filter answers with
    /// a cell under it.
    public func catalog(filters: [String: [String]], rule: DisclosureRule) throws -> [CatalogDataset] {
        let all = try read { db in try Row.fetchAll(db, sql: "SELECT * FROM heads ORDER BY node, dataset").map(CatalogDataset.init) }
        let people = try catalogPeople()
        return all.map { $0.disclosed(people[.init(node: $0.node, dataset: $0.dataset)], rule: rule) }.filter { item in
            filters.allSatisfy { key, wanted in
                switch key {
                case "node": return wanted.contains(item.node)
                case "cancer_type": return wanted.contains(item.metadata["cancer_type"]?.string ?? "")
                case "modality", "body_part", "manufacturer", "sex":
                    let present = item.summary["by_" + key]?.object ?? [:]
                    return wanted.contains { present[$0] != nil }
                default: return true
                }
            }
        }
    }

    public func catalogDataset(_ id: String, rule: DisclosureRule) throws -> [CatalogDataset] {
        let rows = try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM heads WHERE dataset = ? ORDER BY node", arguments: [id]).map(CatalogDataset.init)
        }
        let people = try catalogPeople()
        return rows.map { $0.disclosed(people[.init(node: $0.node, dataset: $0.dataset)], rule: rule) }
    }

    private func catalogPeople() throws -> [FacetCounts.NodeDataset: FacetCounts.DatasetPeople] {
        if !counts.isLoaded { try loadCounts() }
        return counts.people()
    }

    /// Subjects and studies per dataset among instances meeting every instance criterion (sex,
    /// modality, body part, manufacturer), in datasets meeting the dataset criterion (cancer type).
    public func count(_ criteria: CountCriteria) throws -> [(node: String, dataset: String, subjects: Int, studies: Int)] {
        if !counts.isLoaded { try loadCounts() }
        return counts.count(criteria).map { ($0.node, $0.dataset, $0.subjects, $0.studies) }
    }

    /// The datasets whose count may be released under the rule: at least `minCount` people, and
    /// differing from the count of every query one step away (a criterion dropped, a value dropped
    /// from a list) by none or by at least `minCount` people, so that subtracting one answer from
    /// its neighbour never isolates a smaller group; and each value asked for is one the breakdown
    /// of the query without that criterion releases, so that released siblings subtracted from
    /// their total do not either. Answers combined otherwise still can (the rule's known limit).
    public func disclosedCount(_ criteria: CountCriteria, rule: DisclosureRule)
        throws -> [(node: String, dataset: String, subjects: Int, studies: Int)] {
        let rows = try count(criteria).filter { rule.releases($0.subjects) && rule.releases($0.studies) }
        guard !rows.isEmpty else { return [] }
        var released = Set(rows.map { "\($0.node)/\($0.dataset)" })
        for neighbour in criteria.neighbours {
            let other = Dictionary(try count(neighbour).map { ("\($0.node)/\($0.dataset)", $0.subjects) }, uniquingKeysWith: max)
            for row in rows {
                let difference = abs((other["\(row.node)/\(row.dataset)"] ?? 0) - row.subjects)
                if difference > 0 && !rule.releases(difference) { released.remove("\(row.node)/\(row.dataset)") }
            }
        }
        // Beside the breakdown of the query without a criterion by that criterion's values, the
        // cells asked for must be ones the breakdown releases (complementary suppression): else
        // released neighbours subtracted from the total leave the small cell over.
        for key in criteria.values.keys where key != "cancer_type" {
            guard let wanted = criteria.values[key] else { continue }
            let breakdowns = counts.subjectsByValue(criteria, of: key)
            for row in rows {
                guard let cells = breakdowns[.init(node: row.node, dataset: row.dataset)] else { continue }
                let shown = rule.breakdown(cells.byValue, total: cells.total)
                if wanted.contains(where: { cells.byValue[$0] != nil && shown[$0] == nil }) {
                    released.remove("\(row.node)/\(row.dataset)")
                }
            }
        }
        return rows.filter { released.contains("\($0.node)/\($0.dataset)") }
    }

    /// The EUCAIM federated search over the same in-memory facets as counts.
    public func search(_ query: SearchQuery, minCount: Int) throws -> (rows: [SearchRow], ignored: [IgnoredCondition]) {
        if !counts.isLoaded { try loadCounts() }
        return try counts.search(query, minCount: minCount)
    }
}

/// A DCAT-AP description of one dataset, generated from its latest snapshot (what providers fill
/// in a spreadsheet by hand today).
public enum DCAT {
    public static func describe(_ item: CatalogDataset, hubURL: String) -> JSONValue {
        func list(_ key: String) -> JSONValue {
            .array((item.summary["by_" + key]?.object ?? [:]).keys.sorted().map(JSONValue.string))
        }
        let title = item.metadata["title"]?.string ?? item.dataset
        var description: [String: JSONValue] = [
            "@context": .object([
                "dcat": .string("http://www.w3.org/ns/dcat#"), "dct": .string("http://purl.org/dc/terms/"),
                "foaf": .string("http://xmlns.com/foaf/0.1/"), "healthdcatap": .string("http://healthdataportal.eu/ns/health#"),
                "xsd": .string("http://www.w3.org/2001/XMLSchema#"), "cairn": .string("\(hubURL)/ns#"),
            ]),
            "@id": .string("\(hubURL)/v1/catalog/datasets/\(item.dataset)"),
            "@type": .string("dcat:Dataset"),
            "dct:identifier": .string(item.dataset),
            "dct:title": .string(title),
            "dct:description": .string(item.metadata["description"]?.string ?? title),
            "dct:publisher": .object(["@type": .string("foaf:Agent"), "foaf:name": .string(item.node)]),
            "dct:accessRights": .string("http://publications.europa.eu/resource/authority/access-right/RESTRICTED"),
            "dct:modified": .string(ISO8601DateFormatter().string(from: item.updatedAt)),
            "dcat:keyword": list("modality"),
            "cairn:modalities": list("modality"),
            "cairn:bodyParts": list("body_part"),
            "cairn:manufacturers": list("manufacturer"),
            "cairn:snapshot": .string(item.digest),
        ]
        // Withheld counts (left out of a disclosed summary) are left out here too, not published as zero.
        if let subjects = item.summary["subjects"]?.int { description["healthdcatap:numberOfUniqueIndividuals"] = .int(subjects) }
        if let studies = item.summary["studies"]?.int { description["healthdcatap:numberOfRecords"] = .int(studies) }
        if item.summary["suppressed"]?.bool == true { description["cairn:countsWithheld"] = .bool(true) }
        if let issued = item.createdAt { description["dct:issued"] = .string(issued) }
        if let condition = item.metadata["cancer_type"]?.string { description["healthdcatap:healthTheme"] = .string(condition) }
        return .object(description)
    }
}
