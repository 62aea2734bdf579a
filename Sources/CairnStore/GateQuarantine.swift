import CairnIndex
import Foundation

/// A stored file the gate refused on a rescan and took out of its dataset.
public struct QuarantinedFile: Sendable, Equatable {
    public var dataset: String
    public var digest: BlobDigest
    public var name: String?
    public var subject: String?
    public var reason: String
    public var quarantinedAt: Date
}

/// The holding area for stored files that fail the gate under its current rules. A quarantined
/// file leaves its dataset (its member and instance rows go, so nothing serves, publishes, mounts,
/// searches or counts it) but its blob is kept (gc skips it) until an operator releases it after
/// review, or erases its subject.
public struct GateQuarantine: Sendable {
    let store: BlobStore

    public init(store: BlobStore) { self.store = store }

    /// Takes files out of a dataset into quarantine, each with the gate's reason; returns those
    /// that were members (a file no longer in the dataset is skipped).
    @discardableResult
    public func take(dataset: String, _ files: [(digest: BlobDigest, reason: String)]) throws -> [QuarantinedFile] {
        let now = Date()
        return try store.index.write { db in
            var taken: [QuarantinedFile] = []
            for (digest, reason) in files {
                guard let member = try IndexRow.fetchOne(db, sql: """
                    SELECT d.name, i.subject FROM dataset_blobs d
                    LEFT JOIN instances i ON i.dataset_id = d.dataset_id AND i.digest = d.digest
                    WHERE d.dataset_id = ? AND d.digest = ?
                    """, arguments: [dataset, digest.hex]) else { continue }
                let file = QuarantinedFile(dataset: dataset, digest: digest, name: try member["name"], subject: try member["subject"],
                                           reason: reason, quarantinedAt: now)
                try db.execute(sql: """
                    INSERT INTO quarantine(dataset_id, digest, name, subject, reason, quarantined_at) VALUES (?, ?, ?, ?, ?, ?)
                    ON CONFLICT (dataset_id, digest) DO UPDATE SET reason = excluded.reason, quarantined_at = excluded.quarantined_at
                    """, arguments: [dataset, digest.hex, file.name, file.subject, reason, now.timeIntervalSince1970])
                try db.execute(sql: "DELETE FROM instances WHERE dataset_id = ? AND digest = ?", arguments: [dataset, digest.hex])
                try db.execute(sql: "DELETE FROM dataset_blobs WHERE dataset_id = ? AND digest = ?", arguments: [dataset, digest.hex])
                taken.append(file)
            }
            return taken
        }
    }

    /// What is held for a dataset (nil: every dataset), oldest first.
    public func list(dataset: String?) throws -> [QuarantinedFile] {
        try store.index.read { db in
            let rows = if let dataset {
                try IndexRow.fetchAll(db, sql: "SELECT * FROM quarantine WHERE dataset_id = ? ORDER BY quarantined_at, digest",
                                      arguments: [dataset])
            } else {
                try IndexRow.fetchAll(db, sql: "SELECT * FROM quarantine ORDER BY quarantined_at, dataset_id, digest")
            }
            return try rows.map { row in
                QuarantinedFile(dataset: try row["dataset_id"], digest: try BlobDigest(indexed: row["digest"]), name: try row["name"],
                                subject: try row["subject"], reason: try row["reason"],
                                quarantinedAt: Date(timeIntervalSince1970: try row["quarantined_at"]))
            }
        }
    }

    /// Puts a reviewed file back into its dataset, with the instance attributes read again from its
    /// blob (nil: not a DICOM instance). Throws when the file is not held.
    public func release(dataset: String, digest: BlobDigest, instance: InstanceRecord?) throws -> QuarantinedFile {
        try store.index.write { db in
            guard let row = try IndexRow.fetchOne(db, sql: "SELECT * FROM quarantine WHERE dataset_id = ? AND digest = ?",
                                                  arguments: [dataset, digest.hex]) else {
                throw StoreError.invalidArgument("\(digest) is not in quarantine for dataset '\(dataset)'")
            }
            let file = QuarantinedFile(dataset: dataset, digest: digest, name: try row["name"], subject: try row["subject"],
                                       reason: try row["reason"], quarantinedAt: Date(timeIntervalSince1970: try row["quarantined_at"]))
            try db.execute(sql: "DELETE FROM quarantine WHERE dataset_id = ? AND digest = ?", arguments: [dataset, digest.hex])
            try db.execute(sql: """
                INSERT INTO dataset_blobs(dataset_id, digest, name, added_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING
                """, arguments: [dataset, digest.hex, file.name, Date().timeIntervalSince1970])
            if let instance {
                for statement in BlobStore.replaceInstance(dataset: dataset, digest: digest, instance) {
                    try db.execute(sql: statement.sql, arguments: statement.arguments)
                }
            }
            return file
        }
    }
}
