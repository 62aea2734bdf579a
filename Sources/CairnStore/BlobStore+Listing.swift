import Foundation
import CairnIndex

/// One line of `cairn ls`.
public struct ListedBlob: Sendable {
    public var record: BlobRecord
    public var dataset: String?
    public var name: String?
    /// The DICOM attributes indexed with it in that dataset, when it is an instance.
    public var instance: InstanceRecord?
}

/// Totals for `cairn stats`.
public struct StoreStats: Sendable {
    public var blobs = 0
    public var bytes: UInt64 = 0
    public var storedBytes: UInt64 = 0
    public var byCodec: [String: Int] = [:]
    public var missing = 0
    public var corrupt = 0
    public var datasets = 0
    public var datasetEntries = 0
    public var frameSize = 0
    public var diskFree: UInt64?
}

extension BlobStore {
    /// Blobs of one dataset (with their names), or every blob; in digest order.
    /// `after` is a digest cursor: listing resumes at the next digest, so a client can page through
    /// a dataset of millions without the server holding it.
    public func list(dataset: String?, after: BlobDigest? = nil, limit: Int? = nil) throws -> [ListedBlob] {
        try index.read { db in
            let limitClause = limit.map { " LIMIT \($0)" } ?? ""
            let cursor = after?.hex ?? ""
            if let dataset {
                return try IndexRow.fetchAll(db, sql: """
                    SELECT b.*, d.dataset_id, d.name, i.subject, i.study_uid, i.series_uid, i.sop_uid, i.sop_class, i.modality,
                           i.body_part, i.manufacturer, i.sex, i.study_date, i.rows, i.columns, i.frames AS instance_frames, i.transfer_syntax,
                           i.pixel_data_offset, i.frame_offsets
                    FROM dataset_blobs d JOIN blobs b ON b.digest = d.digest
                    LEFT JOIN instances i ON i.dataset_id = d.dataset_id AND i.digest = d.digest
                    WHERE d.dataset_id = ? AND d.digest > ? ORDER BY d.digest\(limitClause)
                    """, arguments: [dataset, cursor]).map { row in
                        try ListedBlob(record: BlobRecord(row: row), dataset: row["dataset_id"], name: row["name"],
                                   instance: (try row["transfer_syntax"] as String?) == nil ? nil : try InstanceRecord(row: row))
                    }
            }
            return try IndexRow.fetchAll(db, sql: "SELECT * FROM blobs WHERE digest > ? ORDER BY digest\(limitClause)",
                                    arguments: [cursor])
                .map { ListedBlob(record: try BlobRecord(row: $0), dataset: nil, name: nil, instance: nil) }
        }
    }

    public func stats() throws -> StoreStats {
        var stats = try index.read { db in
            var stats = StoreStats()
            if let row = try IndexRow.fetchOne(db, sql: """
                SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes, coalesce(sum(stored_size), 0) AS stored,
                       coalesce(sum(CASE WHEN state = 'missing' THEN 1 ELSE 0 END), 0) AS missing,
                       coalesce(sum(CASE WHEN state = 'corrupt' THEN 1 ELSE 0 END), 0) AS corrupt
                FROM blobs
                """) {
                stats.blobs = try row["n"]
                stats.bytes = try row["bytes"] as UInt64
                stats.storedBytes = try row["stored"] as UInt64
                stats.missing = try row["missing"]
                stats.corrupt = try row["corrupt"]
            }
            for row in try IndexRow.fetchAll(db, sql: "SELECT codec, count(*) AS n FROM blobs GROUP BY codec") {
                stats.byCodec[try row["codec"]] = try row["n"]
            }
            stats.datasets = try Int.fetchOne(db, sql: "SELECT count(*) FROM datasets") ?? 0
            stats.datasetEntries = try Int.fetchOne(db, sql: "SELECT count(*) FROM dataset_blobs") ?? 0
            return stats
        }
        stats.frameSize = frameSize
        stats.diskFree = FileSystem.freeBytes(root)
        return stats
    }
}
