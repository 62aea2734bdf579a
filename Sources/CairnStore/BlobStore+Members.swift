import CairnBlobs
import Foundation
import CairnIndex

/// One blob of a dataset with what a file view of the dataset needs: its size and time, and the
/// instance attributes that place it in a subject/study/series tree (nil when it is not DICOM).
public struct DatasetMember: Sendable, Equatable {
    public var digest: BlobDigest
    /// The name given at upload or ingest (its file name), if any.
    public var name: String?
    public var size: UInt64
    /// How the blob file is stored, so a reader opens without another index lookup.
    public var codec: BlobCodec
    /// `ok`, or what `verify` found (`corrupt`, `missing`): only an `ok` blob may be read.
    public var state: String
    public var storedAt: Date
    public var instance: Instance?

    public init(digest: BlobDigest, name: String?, size: UInt64, codec: BlobCodec = .zstd, state: String = "ok",
                storedAt: Date, instance: Instance?) {
        self.digest = digest
        self.name = name
        self.size = size
        self.codec = codec
        self.state = state
        self.storedAt = storedAt
        self.instance = instance
    }

    public struct Instance: Sendable, Equatable {
        public var subject: String?
        public var studyUID: String?
        public var seriesUID: String?
        public var sopInstanceUID: String?
        public var modality: String?
        public var bodyPart: String?
        public var studyDate: String?

        public init(subject: String? = nil, studyUID: String? = nil, seriesUID: String? = nil, sopInstanceUID: String? = nil,
                    modality: String? = nil, bodyPart: String? = nil, studyDate: String? = nil) {
            self.subject = subject
            self.studyUID = studyUID
            self.seriesUID = seriesUID
            self.sopInstanceUID = sopInstanceUID
            self.modality = modality
            self.bodyPart = bodyPart
            self.studyDate = studyDate
        }
    }
}

extension BlobStore {
    /// For each of `datasets` (nil: every dataset) that exists, a number that moves on whenever it
    /// gains or loses a blob or an instance, or one of its blobs changes (in any process): a
    /// listing read at one value is current until it changes. One statement for all of them.
    public func contentGenerations(of datasets: [String]? = nil) throws -> [String: Int64] {
        let all = try index.readStatement { db in
            var generations: [String: Int64] = [:]
            for row in try IndexRow.fetchAll(db.cachedStatement(sql: "SELECT id, content_generation FROM datasets")) {
                generations[try row["id"] as String] = try row["content_generation"] as Int64
            }
            return generations
        }
        guard let datasets else { return all }
        return all.filter { datasets.contains($0.key) }
    }

    /// The number of the newest erasure record (0 when there is none): where a view starts watching.
    public func latestErasure() throws -> Int64 {
        try index.readStatement { db in try Int64.fetchOne(db, sql: "SELECT coalesce(max(rowid), 0) FROM erasures") ?? 0 }
    }

    /// Subjects erased from `datasets` after erasure record `after`, and the
    /// last record's number, so a view can hide an erased subject before it re-reads the dataset.
    public func erasures(after: Int64, in datasets: [String]) throws -> (erased: [(dataset: String, subject: String)], last: Int64) {
        try index.read { db in
            var erased: [(dataset: String, subject: String)] = []
            var last = after
            for row in try IndexRow.fetchAll(db, sql: "SELECT rowid, dataset_id, subject FROM erasures WHERE rowid > ? ORDER BY rowid",
                                        arguments: [after]) {
                last = max(last, try row[0] as Int64)
                let dataset: String = try row[1]
                if datasets.contains(dataset) { erased.append((dataset, try row[2])) }
            }
            return (erased, last)
        }
    }

    /// Every blob of `dataset` with its instance attributes, in digest order, and the dataset's
    /// content generation it was read at (one transaction, so the two agree).
    public func members(of dataset: String) throws -> (members: [DatasetMember], generation: Int64) {
        try index.read { db in
            let generation = try Int64.fetchOne(db, sql: "SELECT content_generation FROM datasets WHERE id = ?", arguments: [dataset]) ?? 0
            var members: [DatasetMember] = []
            try db.forEachRow(sql: """
                SELECT d.digest, d.name, b.size, b.codec, b.state, b.created_at, i.digest AS instance_digest, i.subject, i.study_uid,
                       i.series_uid, i.sop_uid, i.modality, i.body_part, i.study_date
                FROM dataset_blobs d JOIN blobs b ON b.digest = d.digest
                LEFT JOIN instances i ON i.dataset_id = d.dataset_id AND i.digest = d.digest
                WHERE d.dataset_id = ? ORDER BY d.digest
                """, arguments: [dataset]) { row in
                var instance: DatasetMember.Instance?
                if (try row["instance_digest"] as String?) != nil {
                    var found = DatasetMember.Instance()
                    found.subject = try row["subject"]
                    found.studyUID = try row["study_uid"]
                    found.seriesUID = try row["series_uid"]
                    found.sopInstanceUID = try row["sop_uid"]
                    found.modality = try row["modality"]
                    found.bodyPart = try row["body_part"]
                    found.studyDate = try row["study_date"]
                    instance = found
                }
                let digest = try BlobDigest(indexed: row["digest"])
                guard let size = UInt64(exactly: try row["size"] as Int64) else {
                    throw StoreError.index("blob \(digest) has a negative size in the index")
                }
                guard let codec = BlobCodec(rawValue: try row["codec"]) else {
                    throw StoreError.index("blob \(digest) has an unknown codec in the index")
                }
                members.append(DatasetMember(
                    digest: digest, name: try row["name"], size: size, codec: codec, state: try row["state"],
                    storedAt: Date(timeIntervalSince1970: try row["created_at"]), instance: instance))
            }
            return (members, generation)
        }
    }
}
