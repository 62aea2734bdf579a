import CairnBlobs
import CairnDICOM
import Foundation
import CairnIndex

/// A dataset's descriptive metadata and ingest policy.
public struct DatasetInfo: Sendable, Equatable {
    public enum DeidPolicy: String, Sendable, CaseIterable {
        /// Files are verified against the PS3.15 Basic Profile under the dataset's
        /// de-identification policy; what fails is refused.
        case reject
        /// Everything is stored; the dataset is recorded as not gated.
        case accept
    }

    public var id: String
    public var title: String?
    public var description: String?
    public var cancerType: String?
    public var deidPolicy: DeidPolicy
    /// Whether a gated dataset also stores files that are not DICOM at all (off unless asked for).
    public var allowNonDicom: Bool
    /// What the gate accepts of the Basic Profile's options, and the pseudonym pattern.
    public var deidentification: DeidentificationPolicy
    /// Whether federated searches (EUCAIM, through Focus) may count this dataset (off unless asked for).
    public var searchable: Bool
    /// The dataset's diagnosis as a catalogue code (`SNOMEDCT…`), when set.
    public var diagnosis: String?
    /// How its blobs are written unless ingest names a profile or codec (nil: `StorageProfile.default`).
    public var storageProfile: StorageProfile?
    /// The profile its writes take unless told otherwise.
    public var writeProfile: StorageProfile { storageProfile ?? .default }
    public var createdAt: Date

    init(row: IndexRow) throws {
        id = try row["id"]
        title = try row["title"]
        description = try row["description"]
        cancerType = try row["cancer_type"]
        deidPolicy = DeidPolicy(rawValue: try row["deid_policy"]) ?? .reject
        allowNonDicom = try row["allow_non_dicom"] ?? false
        // An option name this version does not know (written by a newer Cairn) is not accepted.
        let options = Set((try row["deid_options"] as String? ?? "").split(separator: ",").compactMap {
            DeidentificationOption(rawValue: String($0))
        })
        deidentification = DeidentificationPolicy(
            acceptedOptions: options, pseudonymPattern: try row["pseudonym_pattern"],
            allowEmbeddedDocuments: try row["allow_embedded_documents"] ?? false,
            allowUnstatedBurnedInAnnotation: try row["allow_unstated_burned_in"] ?? false,
            reviewText: row.hasColumn("text_review") ? try row["text_review"] ?? true : true)
        searchable = try row["searchable"] ?? false
        diagnosis = try row["diagnosis"]
        storageProfile = row.hasColumn("storage_profile") ? (try row["storage_profile"] as String?).flatMap(StorageProfile.init) : nil
        createdAt = Date(timeIntervalSince1970: try row["created_at"])
    }
}

/// A dataset's ingest gate: whether it is gated, what its verifier accepts, and whether files that
/// are not DICOM may enter it. `closed` is what applies when the dataset cannot be read.
public struct DatasetGate: Sendable, Equatable {
    public var deidPolicy: DatasetInfo.DeidPolicy
    public var allowNonDicom: Bool
    public var deidentification: DeidentificationPolicy

    public init(deidPolicy: DatasetInfo.DeidPolicy, allowNonDicom: Bool, deidentification: DeidentificationPolicy = .strict) {
        self.deidPolicy = deidPolicy
        self.allowNonDicom = allowNonDicom
        self.deidentification = deidentification
    }

    public static let closed = DatasetGate(deidPolicy: .reject, allowNonDicom: false)

    /// What ingest into a dataset must check: its settings and the text its reviewer accepted.
    /// nil when the dataset does not exist.
    public static func load(dataset: String, from store: BlobStore) throws -> DatasetGate? {
        guard let info = try store.dataset(dataset) else { return nil }
        var policy = info.deidentification
        if info.deidPolicy == .reject && policy.reviewText {
            policy.reviewedText = try GateTextReview(store: store).reviewed(dataset: dataset)
        }
        return DatasetGate(deidPolicy: info.deidPolicy, allowNonDicom: info.allowNonDicom, deidentification: policy)
    }
}

extension BlobStore {
    /// Sets what a dataset's gate accepts; nil leaves a setting as it is. Returns the dataset as it
    /// is now. Files already stored are not re-judged here: `cairn gate rescan` does that.
    @discardableResult
    public func setDeidentification(dataset id: String, options: Set<DeidentificationOption>?, pseudonymPattern: String??,
                                    allowEmbeddedDocuments: Bool?, allowUnstatedBurnedIn: Bool?,
                                    reviewText: Bool? = nil) throws -> DatasetInfo {
        if let pattern = pseudonymPattern ?? nil {
            do {
                _ = try DeidentificationPolicy(pseudonymPattern: pattern).validated()
            } catch {
                throw StoreError.invalidArgument("\(error)")
            }
        }
        return try index.write { db in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM datasets WHERE id = ?", arguments: [id]) ?? false else {
                throw StoreError.invalidArgument("dataset '\(id)' does not exist")
            }
            if let options {
                try db.execute(sql: "UPDATE datasets SET deid_options = ? WHERE id = ?",
                               arguments: [options.sorted().map(\.rawValue).joined(separator: ","), id])
            }
            if let pseudonymPattern {
                try db.execute(sql: "UPDATE datasets SET pseudonym_pattern = ? WHERE id = ?", arguments: [pseudonymPattern, id])
            }
            if let allowEmbeddedDocuments {
                try db.execute(sql: "UPDATE datasets SET allow_embedded_documents = ? WHERE id = ?", arguments: [allowEmbeddedDocuments, id])
            }
            if let allowUnstatedBurnedIn {
                try db.execute(sql: "UPDATE datasets SET allow_unstated_burned_in = ? WHERE id = ?", arguments: [allowUnstatedBurnedIn, id])
            }
            if let reviewText {
                try db.execute(sql: "UPDATE datasets SET text_review = ? WHERE id = ?", arguments: [reviewText, id])
            }
            guard let info = try IndexRow.fetchOne(db, sql: "SELECT * FROM datasets WHERE id = ?", arguments: [id]).map(DatasetInfo.init)
            else { throw StoreError.invalidArgument("dataset '\(id)' does not exist") }
            return info
        }
    }
}

extension BlobStore {
    /// Turns federated search on or off for a dataset, and sets its diagnosis code; nil leaves either as it is.
    public func setSearch(dataset id: String, searchable: Bool?, diagnosis: String?) throws {
        try index.write { db in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM datasets WHERE id = ?", arguments: [id]) ?? false else {
                throw StoreError.invalidArgument("dataset '\(id)' does not exist")
            }
            if let searchable { try db.execute(sql: "UPDATE datasets SET searchable = ? WHERE id = ?", arguments: [searchable, id]) }
            if let diagnosis { try db.execute(sql: "UPDATE datasets SET diagnosis = ? WHERE id = ?", arguments: [diagnosis, id]) }
        }
    }
}

/// Counts for `cairn dataset show`.
public struct DatasetSummary: Sendable {
    public var info: DatasetInfo
    public var subjects = 0
    public var studies = 0
    public var series = 0
    public var instances = 0
    public var files = 0
    public var bytes: UInt64 = 0
    public var storedBytes: UInt64 = 0
    public var byModality: [String: Int] = [:]
    public var byBodyPart: [String: Int] = [:]
    public var byManufacturer: [String: Int] = [:]
    public var bySex: [String: Int] = [:]
    public var erasures = 0
    /// Instances the gate took out of the dataset for review (`cairn gate rescan --quarantine`).
    public var quarantined = 0
    /// Kept text values the dataset's reviewer accepted (`cairn gate review`).
    public var reviewedText = 0
}

extension InstanceRecord {
    /// From an `instances` row. Joined with `blobs`, whose `frames` counts blob frames, the
    /// listing names the instance's column `instance_frames`.
    init(row: IndexRow) throws {
        let offsets = (try row["frame_offsets"] as String?)?.split(separator: ",").compactMap { UInt64($0) } ?? []
        self.init(subject: try row["subject"], studyUID: try row["study_uid"], seriesUID: try row["series_uid"], sopInstanceUID: try row["sop_uid"],
                  sopClassUID: try row["sop_class"], modality: try row["modality"], bodyPart: try row["body_part"],
                  manufacturer: try row["manufacturer"], sex: try row["sex"], studyDate: try row["study_date"],
                  ageYears: row.hasColumn("age_years") ? try row["age_years"] : nil, rows: try row["rows"],
                  columns: try row["columns"], frames: row.hasColumn("instance_frames") ? try row["instance_frames"] : try row["frames"],
                  transferSyntax: try row["transfer_syntax"],
                  pixelDataOffset: try row["pixel_data_offset"] as UInt64?, frameOffsets: offsets)
        guard row.hasColumn("study_attributes") else { return }
        patientName = try row["patient_name"]
        accessionNumber = try row["accession_number"]
        studyID = try row["study_id"]
        studyTime = try row["study_time"]
        seriesNumber = try row["series_number"]
        instanceNumber = try row["instance_number"]
        studyAttributes = try row["study_attributes"]
        seriesAttributes = try row["series_attributes"]
        instanceAttributes = try row["instance_attributes"]
        frameLength = try row["frame_length"]
        referringPhysician = try row["referring_physician"]
        studyDescription = try row["study_description"]
    }
}

extension BlobStore {
    public func createDataset(id: String, title: String?, description: String? = nil, cancerType: String? = nil,
                              deidPolicy: DatasetInfo.DeidPolicy = .reject, allowNonDicom: Bool = false,
                              storageProfile: StorageProfile? = nil) throws {
        try Self.validateDatasetID(id)
        try index.write { db in
            try db.execute(sql: """
                INSERT INTO datasets(id, title, description, cancer_type, deid_policy, allow_non_dicom, created_at, storage_profile)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(id) DO UPDATE SET title = coalesce(excluded.title, datasets.title),
                    description = coalesce(excluded.description, datasets.description),
                    cancer_type = coalesce(excluded.cancer_type, datasets.cancer_type), deid_policy = excluded.deid_policy,
                    allow_non_dicom = excluded.allow_non_dicom,
                    storage_profile = coalesce(excluded.storage_profile, datasets.storage_profile)
                """, arguments: [id, title, description, cancerType, deidPolicy.rawValue, allowNonDicom, Date().timeIntervalSince1970,
                                 storageProfile?.rawValue])
        }
    }

    public func dataset(_ id: String) throws -> DatasetInfo? {
        try index.read { db in
            try IndexRow.fetchOne(db, sql: "SELECT * FROM datasets WHERE id = ?", arguments: [id]).map(DatasetInfo.init)
        }
    }

    public func datasets() throws -> [DatasetInfo] {
        try index.read { db in try IndexRow.fetchAll(db, sql: "SELECT * FROM datasets ORDER BY id").map(DatasetInfo.init) }
    }

    public func summary(of id: String) throws -> DatasetSummary? {
        try index.read { db in
            guard let info = try IndexRow.fetchOne(db, sql: "SELECT * FROM datasets WHERE id = ?", arguments: [id]).map(DatasetInfo.init)
            else { return nil }
            var summary = DatasetSummary(info: info)
            if let row = try IndexRow.fetchOne(db, sql: """
                SELECT count(DISTINCT subject) AS subjects, count(DISTINCT study_uid) AS studies,
                       count(DISTINCT series_uid) AS series, count(*) AS instances
                FROM instances WHERE dataset_id = ?
                """, arguments: [id]) {
                summary.subjects = try row["subjects"]
                summary.studies = try row["studies"]
                summary.series = try row["series"]
                summary.instances = try row["instances"]
            }
            if let row = try IndexRow.fetchOne(db, sql: """
                SELECT count(*) AS files, coalesce(sum(b.size), 0) AS bytes, coalesce(sum(b.stored_size), 0) AS stored
                FROM dataset_blobs d JOIN blobs b ON b.digest = d.digest WHERE d.dataset_id = ?
                """, arguments: [id]) {
                summary.files = try row["files"]
                summary.bytes = try row["bytes"] as UInt64
                summary.storedBytes = try row["stored"] as UInt64
            }
            func breakdown(_ column: String) throws -> [String: Int] {
                var out: [String: Int] = [:]
                for row in try IndexRow.fetchAll(db, sql: """
                    SELECT coalesce(\(column), '(none)') AS k, count(*) AS n FROM instances WHERE dataset_id = ? GROUP BY k
                    """, arguments: [id]) {
                    out[try row["k"]] = try row["n"]
                }
                return out
            }
            summary.byModality = try breakdown("modality")
            summary.byBodyPart = try breakdown("body_part")
            summary.byManufacturer = try breakdown("manufacturer")
            summary.bySex = try breakdown("sex")
            summary.erasures = try Int.fetchOne(db, sql: "SELECT count(*) FROM erasures WHERE dataset_id = ?", arguments: [id]) ?? 0
            summary.quarantined = try Int.fetchOne(db, sql: "SELECT count(*) FROM quarantine WHERE dataset_id = ?", arguments: [id]) ?? 0
            summary.reviewedText = try Int.fetchOne(db, sql: "SELECT count(*) FROM reviewed_text WHERE dataset_id = ?", arguments: [id]) ?? 0
            return summary
        }
    }

    /// Removes a subject's instances from a dataset (consent withdrawn) and records the erasure.
    /// Blobs no longer referenced by any dataset are left for `gc`. Returns the instances removed.
    @discardableResult
    public func eraseSubject(_ subject: String, from dataset: String) throws -> Int {
        try index.write { db in
            try db.execute(sql: """
                DELETE FROM dataset_blobs WHERE dataset_id = ?
                    AND digest IN (SELECT digest FROM instances WHERE dataset_id = ? AND subject = ?)
                """, arguments: [dataset, dataset, subject])
            try db.execute(sql: "DELETE FROM instances WHERE dataset_id = ? AND subject = ?", arguments: [dataset, subject])
            let removed = db.changesCount
            // What the gate quarantined of the subject goes too (its blobs are then left for gc).
            try db.execute(sql: "DELETE FROM quarantine WHERE dataset_id = ? AND subject = ?", arguments: [dataset, subject])
            try db.execute(sql: "INSERT INTO erasures(dataset_id, subject, instances, erased_at) VALUES (?, ?, ?, ?)",
                           arguments: [dataset, subject, removed, Date().timeIntervalSince1970])
            return removed
        }
    }

    /// The instance rows of a dataset (for `ls --dataset` and tests).
    public func instances(in dataset: String) throws -> [(digest: BlobDigest, record: InstanceRecord)] {
        try index.read { db in
            try IndexRow.fetchAll(db, sql: "SELECT * FROM instances WHERE dataset_id = ? ORDER BY digest", arguments: [dataset]).map { row in
                (try BlobDigest(indexed: row["digest"]), try InstanceRecord(row: row))
            }
        }
    }

    /// Replaces the instance row: a delete, then an insert, so both engines' triggers move the
    /// generations on (twice for a replaced row; they are compared for change, never counted).
    static func replaceInstance(dataset: String, digest: BlobDigest, _ r: InstanceRecord) -> [IndexStatementText] {
        [IndexStatementText("DELETE FROM instances WHERE dataset_id = ? AND digest = ?", [dataset, digest.hex]),
         IndexStatementText("""
            INSERT INTO instances(dataset_id, digest, subject, study_uid, series_uid, sop_uid, sop_class, modality,
                body_part, manufacturer, sex, study_date, age_years, rows, columns, frames, transfer_syntax, pixel_data_offset,
                frame_offsets, patient_name, accession_number, study_id, study_time, series_number, instance_number,
                study_attributes, series_attributes, instance_attributes, frame_length, referring_physician, study_description)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, [dataset, digest.hex, r.subject, r.studyUID, r.seriesUID, r.sopInstanceUID, r.sopClassUID, r.modality,
                             r.bodyPart, r.manufacturer, r.sex, r.studyDate, r.ageYears, r.rows, r.columns, r.frames, r.transferSyntax,
                             r.pixelDataOffset.map { Int64($0) },
                             r.frameOffsets.isEmpty ? nil : r.frameOffsets.map(String.init).joined(separator: ","),
                             r.patientName, r.accessionNumber, r.studyID, r.studyTime, r.seriesNumber, r.instanceNumber,
                             r.studyAttributes, r.seriesAttributes, r.instanceAttributes, r.frameLength,
                             r.referringPhysician, r.studyDescription])]
    }
}
