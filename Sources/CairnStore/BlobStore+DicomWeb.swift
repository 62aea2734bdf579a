import CairnBlobs
import CairnDICOM
import Foundation
import CairnIndex

/// An instance row with its blob: what WADO-RS needs to serve it and QIDO-RS to describe it.
public struct StoredInstance: Sendable {
    public var blob: BlobRecord
    public var instance: InstanceRecord
}

/// A QIDO-RS search the index answers: conditions on indexed keys (AND across keys), paging.
public struct InstanceQuery: Sendable, Equatable {
    /// The indexed columns a search may match on.
    public enum Key: String, Sendable, CaseIterable {
        case patientID = "subject", patientName = "patient_name", studyUID = "study_uid", seriesUID = "series_uid"
        case sopUID = "sop_uid", sopClass = "sop_class", modality, studyDate = "study_date", studyTime = "study_time"
        case accessionNumber = "accession_number", studyID = "study_id", seriesNumber = "series_number"
        case instanceNumber = "instance_number", referringPhysician = "referring_physician", studyDescription = "study_description"
    }

    public enum Match: Sendable, Equatable {
        /// Single value matching; `*` and `?` wildcards when `wildcard` (PS3.4 C.2.2.2.4).
        case value(String, wildcard: Bool)
        /// List of UID matching, and for the other keys several single values (any may match).
        case any([String])
        /// Range matching on dates and times: both bounds inclusive, either may be open.
        case range(lower: String?, upper: String?)
        case integer(Int)
    }

    public struct Condition: Sendable, Equatable {
        public var key: Key
        public var match: Match
        public init(_ key: Key, _ match: Match) {
            self.key = key
            self.match = match
        }
    }

    public var level: QueryLevel
    public var conditions: [Condition]
    public var limit: Int
    public var offset: Int

    public init(level: QueryLevel, conditions: [Condition] = [], limit: Int, offset: Int = 0) {
        self.level = level
        self.conditions = conditions
        self.limit = limit
        self.offset = offset
    }

    /// The WHERE clause (after `dataset_id = ?`) and its arguments. Wildcards become GLOB patterns
    /// on SQLite (GLOB's own `[` escaped) and LIKE patterns on PostgreSQL (`%`, `_` and `\` escaped):
    /// both case-sensitive, like DICOM matching.
    func whereClause(_ dialect: IndexDialect) -> (sql: String, arguments: [(any IndexBindable)?]) {
        var sql = ""
        var arguments: [(any IndexBindable)?] = []
        for condition in conditions {
            let column = "i." + condition.key.rawValue
            switch condition.match {
            case .value(let text, let wildcard):
                if wildcard, dialect == .postgres {
                    sql += " AND \(column) LIKE ? ESCAPE '\\'"
                    arguments.append(Self.likePattern(text))
                } else if wildcard {
                    sql += " AND \(column) GLOB ?"
                    arguments.append(text.replacingOccurrences(of: "[", with: "[[]"))
                } else {
                    sql += " AND \(column) = ?"
                    arguments.append(text)
                }
            case .any(let values) where values.isEmpty:
                // Matches nothing (`IN ()` is an error on PostgreSQL).
                sql += " AND 1 = 0"
            case .any(let values):
                sql += " AND \(column) IN (" + values.map { _ in "?" }.joined(separator: ",") + ")"
                arguments.append(contentsOf: values.map { $0 as (any IndexBindable)? })
            case .range(let lower, let upper):
                if let lower {
                    sql += " AND \(column) >= ?"
                    arguments.append(lower)
                }
                if let upper {
                    sql += " AND \(column) <= ?"
                    arguments.append(upper)
                }
                if lower == nil && upper == nil { sql += " AND \(column) IS NOT NULL" }
            case .integer(let value):
                sql += " AND \(column) = ?"
                arguments.append(value)
            }
        }
        return (sql, arguments)
    }

    /// A DICOM wildcard value (`*`, `?`) as a LIKE pattern with `\` as its escape.
    static func likePattern(_ text: String) -> String {
        var pattern = ""
        for c in text {
            switch c {
            case "\\", "%", "_": pattern += "\\" + String(c)
            case "*": pattern += "%"
            case "?": pattern += "_"
            default: pattern.append(c)
            }
        }
        return pattern
    }
}

/// One study or series a search found, with what the index counts about it.
public struct FoundGroup: Sendable {
    public var studyUID: String
    public var seriesUID: String?
    public var seriesCount: Int
    public var instanceCount: Int
    /// ModalitiesInStudy (study level).
    public var modalities: [String]
    /// A member instance: its study- and series-level attributes describe the group.
    public var example: InstanceRecord
}

/// The columns of a DICOMweb row, read by position: GRDB's by-name lookup lower-cases each name
/// on every access, which a 1,000-instance metadata request felt (a tenth of its time).
enum StoredInstanceColumns {
    static let sql = """
        b.digest, b.size, b.stored_size, b.codec, b.frames, b.state, b.created_at,
        i.subject, i.study_uid, i.series_uid, i.sop_uid, i.sop_class, i.modality, i.body_part, i.manufacturer, i.sex,
        i.study_date, i.rows, i.columns, i.frames, i.transfer_syntax, i.pixel_data_offset, i.frame_offsets, i.frame_length,
        i.patient_name, i.accession_number, i.study_id, i.study_time, i.series_number, i.instance_number,
        i.study_attributes, i.series_attributes, i.instance_attributes, i.referring_physician, i.study_description
        """

    static func decode(_ row: IndexRow) throws -> StoredInstance {
        let digest = try BlobDigest(indexed: row[0])
        guard let codec = BlobCodec(rawValue: try row[3] ?? "") else {
            throw StoreError.index("blob \(digest) has an unknown encoding '\(try row[3] as String? ?? "")'")
        }
        let blob = BlobRecord(digest: digest, size: UInt64(max(0, try row[1] as Int64? ?? 0)),
                              storedSize: UInt64(max(0, try row[2] as Int64? ?? 0)), codec: codec,
                              frames: try row[4] ?? 0, state: BlobRecord.State(rawValue: try row[5] ?? "") ?? .corrupt,
                              createdAt: Date(timeIntervalSince1970: try row[6] ?? 0))
        var r = InstanceRecord(subject: try row[7], studyUID: try row[8], seriesUID: try row[9], sopInstanceUID: try row[10], sopClassUID: try row[11],
                               modality: try row[12], bodyPart: try row[13], manufacturer: try row[14], sex: try row[15], studyDate: try row[16],
                               rows: try row[17], columns: try row[18], frames: try row[19], transferSyntax: try row[20],
                               pixelDataOffset: (try row[21] as Int64?).map { UInt64(max(0, $0)) },
                               frameOffsets: (try row[22] as String?)?.split(separator: ",").compactMap { UInt64($0) } ?? [])
        r.frameLength = try row[23]
        r.patientName = try row[24]
        r.accessionNumber = try row[25]
        r.studyID = try row[26]
        r.studyTime = try row[27]
        r.seriesNumber = try row[28]
        r.instanceNumber = try row[29]
        r.studyAttributes = try row[30]
        r.seriesAttributes = try row[31]
        r.instanceAttributes = try row[32]
        r.referringPhysician = try row[33]
        r.studyDescription = try row[34]
        return StoredInstance(blob: blob, instance: r)
    }
}

extension BlobStore {
    /// DICOMweb sees only instances it can address: study, series and SOP instance UIDs all present.
    static let addressable = "i.study_uid IS NOT NULL AND i.series_uid IS NOT NULL AND i.sop_uid IS NOT NULL"

    /// Instances matching `query` (level `.instance`), with their blobs, in a stable order (study
    /// date, then digest: what the modality-and-date index yields without sorting), so pages
    /// neither overlap nor skip. `more` says whether another page has results.
    public func searchInstances(_ query: InstanceQuery, in dataset: String) throws -> (found: [StoredInstance], more: Bool) {
        let (clause, arguments) = query.whereClause(index.database.dialect)
        let rows = try index.read { db in
            try IndexRow.fetchAll(db, sql: """
                SELECT \(StoredInstanceColumns.sql) FROM instances i JOIN blobs b ON b.digest = i.digest
                WHERE i.dataset_id = ? AND \(Self.addressable)\(clause) ORDER BY i.study_date, i.digest LIMIT ? OFFSET ?
                """, arguments: IndexArguments([dataset] + arguments + [query.limit + 1, query.offset])).map(StoredInstanceColumns.decode)
        }
        return (Array(rows.prefix(query.limit)), rows.count > query.limit)
    }

    /// Studies (level `.study`) or series (level `.series`) that have an instance matching `query`,
    /// in UID order, with their counts.
    public func searchGroups(_ query: InstanceQuery, in dataset: String) throws -> (found: [FoundGroup], more: Bool) {
        let (clause, arguments) = query.whereClause(index.database.dialect)
        let groupColumn = query.level == .study ? "study_uid" : "series_uid"
        return try index.read { db in
            let keys = try String.fetchAll(db, sql: """
                SELECT i.\(groupColumn) FROM instances i
                WHERE i.dataset_id = ? AND \(Self.addressable)\(clause)
                GROUP BY i.\(groupColumn) ORDER BY i.\(groupColumn) LIMIT ? OFFSET ?
                """, arguments: IndexArguments([dataset] + arguments + [query.limit + 1, query.offset]))
            let groups = try keys.prefix(query.limit).compactMap { key -> FoundGroup? in
                // The group's description comes from one member, one with the stored attributes when
                // there is one: the first such row, not a sort of the whole group for it.
                func example(_ condition: String) throws -> InstanceRecord? {
                    try IndexRow.fetchOne(db, sql: """
                        SELECT \(StoredInstanceColumns.sql) FROM instances i JOIN blobs b ON b.digest = i.digest
                        WHERE i.dataset_id = ? AND i.\(groupColumn) = ? AND \(Self.addressable)\(condition) LIMIT 1
                        """, arguments: [dataset, key]).map(StoredInstanceColumns.decode)?.instance
                }
                guard let counts = try IndexRow.fetchOne(db, sql: """
                    SELECT count(DISTINCT i.series_uid) AS series, count(*) AS instances,
                           \(db.dialect == .postgres ? "string_agg(DISTINCT i.modality, ',')" : "group_concat(DISTINCT i.modality)") AS modalities
                    FROM instances i WHERE i.dataset_id = ? AND i.\(groupColumn) = ? AND \(Self.addressable)
                    """, arguments: [dataset, key]),
                    let example = try example(" AND i.study_attributes IS NOT NULL") ?? example(""),
                    let studyUID = example.studyUID else { return nil }
                let modalities = ((try counts["modalities"] as String?) ?? "").split(separator: ",").map(String.init).sorted()
                return FoundGroup(studyUID: studyUID, seriesUID: query.level == .series ? key : nil,
                                  seriesCount: try counts["series"], instanceCount: try counts["instances"],
                                  modalities: modalities, example: example)
            }
            return (groups, keys.count > query.limit)
        }
    }

    /// Whether the dataset has addressable instances indexed before index v9 kept the QIDO-RS
    /// attributes (their newer matching keys are empty).
    public func hasInstancesIndexedBeforeDicomWeb(in dataset: String) throws -> Bool {
        try index.read { db in
            try Bool.fetchOne(db, sql: """
                SELECT 1 FROM instances i WHERE i.dataset_id = ? AND \(Self.addressable)
                    AND (i.study_attributes IS NULL OR i.study_attributes = '') LIMIT 1
                """, arguments: [dataset]) ?? false
        }
    }

    /// The digests of the files a dataset holds under a SOP Instance UID (in any study or series).
    public func digests(ofSOPInstance sop: String, in dataset: String) throws -> [BlobDigest] {
        try index.read { db in
            try String.fetchAll(db, sql: "SELECT digest FROM instances WHERE sop_uid = ? AND dataset_id = ?",
                                arguments: [sop, dataset]).map { try BlobDigest(indexed: $0) }
        }
    }

    /// How many instance rows (of one dataset, or all) were indexed before index v9 and have not
    /// been through `cairn reindex` yet.
    public func countToReindex(in dataset: String?) throws -> Int {
        try index.read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM instances WHERE study_attributes IS NULL"
                             + (dataset == nil ? "" : " AND dataset_id = ?"), arguments: IndexArguments(dataset.map { [$0] } ?? [])) ?? 0
        }
    }

    /// The next rows to reindex after `cursor` (dataset, digest hex), in key order, with their
    /// blobs: rows a read could not reach stay to reindex but do not come round again.
    public func rowsToReindex(in dataset: String?, after cursor: (String, String), limit: Int) throws -> [(dataset: String, blob: BlobRecord)] {
        try index.read { db in
            try IndexRow.fetchAll(db, sql: """
                SELECT i.dataset_id AS instance_dataset, b.* FROM instances i JOIN blobs b ON b.digest = i.digest
                WHERE i.study_attributes IS NULL AND (i.dataset_id, i.digest) > (?, ?)\(dataset == nil ? "" : " AND i.dataset_id = ?")
                ORDER BY i.dataset_id, i.digest LIMIT ?
                """, arguments: IndexArguments([cursor.0, cursor.1] + (dataset.map { [$0] } ?? []) + [limit])).map {
                (dataset: try $0["instance_dataset"], blob: try BlobRecord(row: $0))
            }
        }
    }

    /// Writes what a reindex read from each blob: the v9 columns, or (for a file that no longer
    /// parses as DICOM) an empty attribute set and nothing else, so the row is not tried again.
    public func storeReindexed(_ rows: [(dataset: String, digest: BlobDigest, record: InstanceRecord?)]) throws {
        try index.write { db in
            for row in rows {
                guard let r = row.record else {
                    try db.execute(sql: "UPDATE instances SET study_attributes = '' WHERE dataset_id = ? AND digest = ? AND study_attributes IS NULL",
                                   arguments: [row.dataset, row.digest.hex])
                    continue
                }
                try db.execute(sql: """
                    UPDATE instances SET patient_name = ?, accession_number = ?, study_id = ?, study_time = ?, series_number = ?,
                        instance_number = ?, study_attributes = ?, series_attributes = ?, instance_attributes = ?, frame_length = ?,
                        referring_physician = ?, study_description = ?
                    WHERE dataset_id = ? AND digest = ? AND study_attributes IS NULL
                    """, arguments: [r.patientName, r.accessionNumber, r.studyID, r.studyTime, r.seriesNumber, r.instanceNumber,
                                     r.studyAttributes ?? "", r.seriesAttributes, r.instanceAttributes, r.frameLength,
                                     r.referringPhysician, r.studyDescription, row.dataset, row.digest.hex])
            }
        }
    }

    /// The instances of a study, series or single instance in a dataset, with their blobs, in
    /// series then instance-number order (what WADO-RS retrieves).
    public func storedInstances(in dataset: String, study: String, series: String? = nil,
                                sop: String? = nil) throws -> [StoredInstance] {
        var sql = """
            SELECT \(StoredInstanceColumns.sql) FROM instances i JOIN blobs b ON b.digest = i.digest
            WHERE i.dataset_id = ? AND i.study_uid = ? AND \(Self.addressable)
            """
        var arguments: [(any IndexBindable)?] = [dataset, study]
        if let series {
            sql += " AND i.series_uid = ?"
            arguments.append(series)
        }
        if let sop {
            sql += " AND i.sop_uid = ?"
            arguments.append(sop)
        }
        sql += " ORDER BY i.series_uid, i.instance_number, i.sop_uid"
        // One statement, prepared once per connection (four shapes): a frame request makes this
        // lookup and little else, and preparing it each time cost a tenth of the request.
        return try index.readStatement { db in
            let statement = try db.cachedStatement(sql: sql)
            return try IndexRow.fetchAll(statement, arguments: IndexArguments(arguments)).map(StoredInstanceColumns.decode)
        }
    }
}
