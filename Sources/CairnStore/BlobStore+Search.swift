import Foundation
import CairnIndex

/// What a federated search reads from the node's index: the searchable datasets and, per dataset,
/// each distinct combination of subject, study, sex, modality, body part, manufacturer and age.
public struct SearchFacetRow: Sendable {
    public var dataset: String
    public var subject: String
    public var study: String
    public var sex: String?
    public var modality: String?
    public var bodyPart: String?
    public var manufacturer: String?
    public var ageYears: Double?
}

extension BlobStore {
    /// Moves on whenever an instance is added or removed or a dataset changes (triggers), also
    /// from other processes: a server compares it to decide whether its search facets are stale.
    public func searchGeneration() throws -> Int64 {
        try index.readStatement { db in
            try Int64.fetchOne(db, sql: "SELECT CAST(value AS BIGINT) FROM settings WHERE key = 'search_generation'") ?? 0
        }
    }

    /// The searchable datasets and their facets, read in one transaction with the generation they belong to.
    public func searchFacets() throws -> (generation: Int64, datasets: [DatasetInfo], facets: [SearchFacetRow]) {
        try index.read { db in
            let generation = try Int64.fetchOne(db, sql: "SELECT CAST(value AS BIGINT) FROM settings WHERE key = 'search_generation'") ?? 0
            let datasets = try IndexRow.fetchAll(db, sql: "SELECT * FROM datasets WHERE searchable = 1 ORDER BY id").map(DatasetInfo.init)
            let facets = try IndexRow.fetchAll(db, sql: """
                SELECT i.dataset_id, coalesce(i.subject, ''), coalesce(i.study_uid, ''), i.sex, i.modality, i.body_part,
                       i.manufacturer, i.age_years
                FROM instances i JOIN datasets d ON d.id = i.dataset_id AND d.searchable = 1
                GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
                """).map { row in
                    SearchFacetRow(dataset: try row[0], subject: try row[1], study: try row[2], sex: try row[3], modality: try row[4], bodyPart: try row[5],
                                   manufacturer: try row[6], ageYears: try row[7])
                }
            return (generation, datasets, facets)
        }
    }
}
