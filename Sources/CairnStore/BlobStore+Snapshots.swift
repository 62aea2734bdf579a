import Foundation
import CairnIndex

/// A stored snapshot document of a dataset.
public struct StoredSnapshot: Sendable, Equatable {
    public var dataset: String
    public var seq: Int64
    public var digest: String
    public var parent: String?
    /// The canonical bytes, exactly as signed and served.
    public var document: [UInt8]
    public var entries: Int

    public init(dataset: String, seq: Int64, digest: String, parent: String?, document: [UInt8], entries: Int) {
        self.dataset = dataset
        self.seq = seq
        self.digest = digest
        self.parent = parent
        self.document = document
        self.entries = entries
    }
}

extension BlobStore {
    /// The attributes a dataset's manifests publish, as stored (nil: DESIGN.md's defaults).
    public func manifestAttributes(of dataset: String) throws -> String? {
        try index.read { db in
            try String.fetchOne(db, sql: "SELECT manifest_attributes FROM datasets WHERE id = ?", arguments: [dataset])
        }
    }

    public func setManifestAttributes(_ list: String?, for dataset: String) throws {
        try index.write { db in
            try db.execute(sql: "UPDATE datasets SET manifest_attributes = ? WHERE id = ?", arguments: [list, dataset])
        }
    }

    public func latestSnapshot(of dataset: String) throws -> StoredSnapshot? {
        try index.read { db in
            try IndexRow.fetchOne(db, sql: "SELECT * FROM snapshots WHERE dataset_id = ? ORDER BY seq DESC LIMIT 1",
                             arguments: [dataset]).map(StoredSnapshot.init)
        }
    }

    /// A page of the entries as last published (digest, canonical entry bytes), in digest order.
    public func publishedEntries(of dataset: String, after: String?, limit: Int) throws -> [(digest: String, entry: [UInt8])] {
        try index.read { db in
            try IndexRow.fetchAll(db, sql: """
                SELECT digest, entry FROM published_entries WHERE dataset_id = ? AND digest > ? ORDER BY digest LIMIT ?
                """, arguments: [dataset, after ?? "", limit]).map { (try $0[0], [UInt8](try $0[1] as Data)) }
        }
    }

    /// Records a new snapshot and moves the published state by its delta, in one transaction.
    /// Fails when another publish got there first (the latest seq is no longer `snapshot.seq - 1`).
    public func commitSnapshot(_ snapshot: StoredSnapshot, added: [(digest: String, entry: [UInt8])], removed: [String]) throws {
        try index.write { db in
            let latest = try Int64.fetchOne(db, sql: "SELECT max(seq) FROM snapshots WHERE dataset_id = ?",
                                            arguments: [snapshot.dataset]) ?? 0
            guard latest == snapshot.seq - 1 else {
                throw StoreError.invalidArgument("dataset \(snapshot.dataset) was published concurrently (now at seq \(latest))")
            }
            try db.execute(sql: """
                INSERT INTO snapshots (dataset_id, seq, digest, parent, document, entries, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
                """, arguments: [snapshot.dataset, snapshot.seq, snapshot.digest, snapshot.parent, Data(snapshot.document),
                                 snapshot.entries, Date().timeIntervalSince1970])
            let delete = try db.cachedStatement(sql: "DELETE FROM published_entries WHERE dataset_id = ? AND digest = ?")
            for digest in removed { try delete.execute(arguments: [snapshot.dataset, digest]) }
            let insert = try db.cachedStatement(sql: """
                INSERT INTO published_entries (dataset_id, digest, entry) VALUES (?, ?, ?)
                ON CONFLICT(dataset_id, digest) DO UPDATE SET entry = excluded.entry
                """)
            for (digest, entry) in added { try insert.execute(arguments: [snapshot.dataset, digest, Data(entry)]) }
            try db.execute(sql: "INSERT INTO outbox (dataset_id, seq, digest, enqueued_at) VALUES (?, ?, ?, ?)",
                           arguments: [snapshot.dataset, snapshot.seq, snapshot.digest, Date().timeIntervalSince1970])
        }
    }

    /// One snapshot of a dataset by sequence number.
    public func snapshot(of dataset: String, seq: Int64) throws -> StoredSnapshot? {
        try index.read { db in
            try IndexRow.fetchOne(db, sql: "SELECT * FROM snapshots WHERE dataset_id = ? AND seq = ?", arguments: [dataset, seq])
                .map(StoredSnapshot.init)
        }
    }

    /// Datasets with snapshots waiting for the hub: oldest wait, failed attempts, last error.
    public func outbox() throws -> [OutboxItem] {
        try index.read { db in
            try IndexRow.fetchAll(db, sql: """
                SELECT dataset_id, min(seq) AS lo, max(seq) AS hi, min(enqueued_at) AS since, max(attempts) AS attempts,
                       max(last_error) AS last_error, max(halted) AS halted
                FROM outbox GROUP BY dataset_id
                """).map {
                    OutboxItem(dataset: try $0["dataset_id"], oldestSeq: try $0["lo"], latestSeq: try $0["hi"],
                               since: Date(timeIntervalSince1970: try $0["since"]), attempts: try $0["attempts"], lastError: try $0["last_error"],
                               halted: try $0["halted"])
                }
        }
    }

    /// The hub holds everything up to `seq`: those outbox rows are done.
    public func outboxDelivered(_ dataset: String, through seq: Int64) throws {
        try index.write { db in
            try db.execute(sql: "DELETE FROM outbox WHERE dataset_id = ? AND seq <= ?", arguments: [dataset, seq])
        }
    }

    public func outboxFailed(_ dataset: String, error: String) throws {
        try index.write { db in
            try db.execute(sql: "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE dataset_id = ?",
                           arguments: [error, dataset])
        }
    }

    /// This node's id, once chosen (nil before the first `init --node-id`, publish or serve).
    public func nodeID() throws -> String? {
        try index.read { db in try String.fetchOne(db, sql: "SELECT value FROM settings WHERE key = 'node_id'") }
    }

    /// A node has one identity: the first caller chooses it (`requested`, else `fallback`, the host
    /// name) and it is stored; later callers get it back, and asking for another id is refused with
    /// how to rename deliberately. Snapshots are signed for this id, so a silent change would make
    /// the hub refuse every push.
    public func claimNodeID(_ requested: String?, fallback: String) throws -> String {
        if let requested { try Self.validateNodeID(requested) }
        return try index.write { db in
            if let stored = try String.fetchOne(db, sql: "SELECT value FROM settings WHERE key = 'node_id'") {
                if let requested, requested != stored {
                    throw StoreError.invalidArgument("""
                        this node's id is '\(stored)' (chosen at init or its first publish or serve, and signed into its \
                        snapshots); '\(requested)' was asked for. To rename the node deliberately, run \
                        `cairn node rename \(requested)` and enroll the new id at the hub
                        """)
                }
                return stored
            }
            let id = requested ?? fallback
            try db.execute(sql: "INSERT INTO settings (key, value) VALUES ('node_id', ?)", arguments: [id])
            return id
        }
    }

    /// Renames the node: its snapshots were signed for the old id, so they, the published state and
    /// the outbox are dropped in the same transaction; the next publish of each dataset is a first
    /// snapshot (seq 1) under the new id. Returns the datasets that had snapshots.
    public func renameNode(to id: String) throws -> [String] {
        try Self.validateNodeID(id)
        return try index.write { db in
            let published = try String.fetchAll(db, sql: "SELECT DISTINCT dataset_id FROM snapshots ORDER BY dataset_id")
            try db.execute(sql: "DELETE FROM outbox; DELETE FROM published_entries; DELETE FROM snapshots")
            try db.execute(sql: "INSERT INTO settings (key, value) VALUES ('node_id', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", arguments: [id])
            return published
        }
    }

    static func validateNodeID(_ id: String) throws { try validateIdentifier(id, what: "node id") }

    /// The hub refused the dataset's push for a reason retrying cannot fix: stop until the node restarts.
    public func outboxHalt(_ dataset: String, reason: String) throws {
        try index.write { db in
            try db.execute(sql: "UPDATE outbox SET halted = ?, last_error = ? WHERE dataset_id = ?", arguments: [reason, reason, dataset])
        }
    }

    /// A starting node tries halted datasets again (the hub's operator may have fixed the cause).
    public func outboxResume() throws {
        try index.write { db in try db.execute(sql: "UPDATE outbox SET halted = NULL WHERE halted IS NOT NULL") }
    }
}

/// Snapshots of one dataset not yet at the hub.
public struct OutboxItem: Sendable {
    public var dataset: String
    public var oldestSeq: Int64
    public var latestSeq: Int64
    public var since: Date
    public var attempts: Int
    public var lastError: String?
    /// Why the hub refused it for good (until the node restarts); nil while it is retried.
    public var halted: String?
}

extension [OutboxItem] {
    /// How long the oldest waiting snapshot has waited: the replication lag.
    public func lag(now: Date = Date()) -> TimeInterval { map { now.timeIntervalSince($0.since) }.max() ?? 0 }

    public var failedAttempts: Int { reduce(0) { $0 + $1.attempts } }

    public var halted: [OutboxItem] { filter { $0.halted != nil } }
}

extension StoredSnapshot {
    init(row: IndexRow) throws {
        dataset = try row["dataset_id"]
        seq = try row["seq"]
        digest = try row["digest"]
        parent = try row["parent"]
        document = [UInt8](try row["document"] as Data)
        entries = try row["entries"]
    }
}
