import CairnAudit
import CairnFoundation
import CairnIndex
import CairnManifest
import Foundation
import GRDB

/// The hub's catalogue in SQLite (GRDB, WAL): enrolled nodes, the head snapshot of every
/// (node, dataset), every published entry's leaf hash and facet (to recompute entries roots and
/// keep counts), the facets count queries read, and refused pushes with their reason.
public struct HubIndex: Sendable {
    let pool: DatabasePool
    /// The `facets` table held in memory for count queries, loaded on first use.
    let counts = FacetCounts()

    public init(path: String) throws {
        // A first sync writes tens of MB of b-tree pages; with SQLite's 2 MB default cache they
        // are spilled to the WAL and read back repeatedly.
        pool = try DurableDatabase.open(path: path, cacheKiB: 64 << 10)
        try Self.migrator.migrate(pool)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-hub") { db in
            try db.execute(sql: """
                CREATE TABLE nodes (
                    id TEXT PRIMARY KEY,
                    public_key TEXT NOT NULL,
                    enrolled_at REAL NOT NULL
                ) WITHOUT ROWID;
                CREATE TABLE heads (
                    node TEXT NOT NULL,
                    dataset TEXT NOT NULL,
                    seq INTEGER NOT NULL,
                    digest TEXT NOT NULL,
                    entries_root TEXT NOT NULL,
                    entries INTEGER NOT NULL,
                    metadata TEXT NOT NULL,
                    summary TEXT NOT NULL,
                    created_at TEXT,
                    updated_at REAL NOT NULL,
                    PRIMARY KEY (node, dataset)
                ) WITHOUT ROWID;
                CREATE TABLE entries (
                    node TEXT NOT NULL,
                    dataset TEXT NOT NULL,
                    digest TEXT NOT NULL,
                    subject TEXT,
                    study_uid TEXT,
                    modality TEXT,
                    body_part TEXT,
                    manufacturer TEXT,
                    sex TEXT,
                    entry BLOB NOT NULL,
                    PRIMARY KEY (node, dataset, digest)
                ) WITHOUT ROWID;
                CREATE INDEX entries_subject ON entries(node, dataset, subject);
                CREATE TABLE rejections (
                    at REAL NOT NULL,
                    node TEXT NOT NULL,
                    dataset TEXT NOT NULL,
                    digest TEXT NOT NULL,
                    reason TEXT NOT NULL
                );
                """)
        }
        migrator.registerMigration("v2-facets") { db in
            // Entries folded to one row per (subject, study, modality, body part, manufacturer,
            // sex) with an instance count: count queries scan this instead of every entry. ''
            // stands for absent (primary-key columns of a WITHOUT ROWID table cannot be NULL).
            try db.execute(sql: """
                CREATE TABLE facets (
                    node TEXT NOT NULL,
                    dataset TEXT NOT NULL,
                    subject TEXT NOT NULL,
                    study_uid TEXT NOT NULL,
                    modality TEXT NOT NULL,
                    body_part TEXT NOT NULL,
                    manufacturer TEXT NOT NULL,
                    sex TEXT NOT NULL,
                    instances INTEGER NOT NULL,
                    PRIMARY KEY (node, dataset, subject, study_uid, modality, body_part, manufacturer, sex)
                ) WITHOUT ROWID;
                INSERT INTO facets
                    SELECT node, dataset, coalesce(subject, ''), coalesce(study_uid, ''), coalesce(modality, ''),
                           coalesce(body_part, ''), coalesce(manufacturer, ''), coalesce(sex, ''), count(*)
                    FROM entries GROUP BY 1, 2, 3, 4, 5, 6, 7, 8;
                """)
        }
        migrator.registerMigration("v3-facet-indexes") { db in
            // One covering index led by each instance criterion, so a count reads only the facets
            // that can match (SQLite picks the most selective).
            for column in ["modality", "sex", "body_part", "manufacturer"] {
                let rest = ["modality", "sex", "body_part", "manufacturer"].filter { $0 != column }
                try db.execute(sql: """
                    CREATE INDEX facets_by_\(column) ON facets(\(column), node, dataset, subject, study_uid, \(rest.joined(separator: ", ")))
                    """)
            }
        }
        migrator.registerMigration("v4-leaf-hashes") { db in
            // Entries keep what the hub needs of them, not their JSON: the leaf hash (for roots)
            // and their facet (to count them down when removed), keyed by a small integer per
            // (node, dataset) and the 32-byte digest. A million entries: ~80 MB instead of ~450 MB
            // with the by-subject index, which nothing read. Counts are answered from memory
            // (FacetCounts), so the facets' covering indexes go.
            db.add(function: DatabaseFunction("cairn_leaf_hash", argumentCount: 1, pure: true) { values in
                (Data.fromDatabaseValue(values[0])).map { Data(Merkle.leafHash($0)) }
            })
            db.add(function: DatabaseFunction("cairn_digest_bytes", argumentCount: 1, pure: true) { values in
                (String.fromDatabaseValue(values[0])).flatMap { Hex.decode($0.dropFirst("sha256:".count)) }.map { Data($0) }
            })
            try db.execute(sql: """
                CREATE TABLE dataset_keys (
                    id INTEGER PRIMARY KEY,
                    node TEXT NOT NULL,
                    dataset TEXT NOT NULL,
                    UNIQUE (node, dataset)
                );
                INSERT INTO dataset_keys (node, dataset) SELECT node, dataset FROM heads ORDER BY node, dataset;
                CREATE TABLE new_facets (
                    id INTEGER PRIMARY KEY,
                    dataset_key INTEGER NOT NULL,
                    subject TEXT NOT NULL,
                    study_uid TEXT NOT NULL,
                    modality TEXT NOT NULL,
                    body_part TEXT NOT NULL,
                    manufacturer TEXT NOT NULL,
                    sex TEXT NOT NULL,
                    instances INTEGER NOT NULL,
                    UNIQUE (dataset_key, subject, study_uid, modality, body_part, manufacturer, sex)
                );
                INSERT INTO new_facets (dataset_key, subject, study_uid, modality, body_part, manufacturer, sex, instances)
                    SELECT k.id, f.subject, f.study_uid, f.modality, f.body_part, f.manufacturer, f.sex, f.instances
                    FROM facets f JOIN dataset_keys k ON k.node = f.node AND k.dataset = f.dataset;
                CREATE TABLE new_entries (
                    dataset_key INTEGER NOT NULL,
                    digest BLOB NOT NULL,
                    leaf BLOB NOT NULL,
                    facet INTEGER NOT NULL,
                    PRIMARY KEY (dataset_key, digest)
                ) WITHOUT ROWID;
                INSERT INTO new_entries
                    SELECT k.id, cairn_digest_bytes(e.digest), cairn_leaf_hash(e.entry), f.id
                    FROM entries e
                    JOIN dataset_keys k ON k.node = e.node AND k.dataset = e.dataset
                    JOIN new_facets f ON f.dataset_key = k.id AND f.subject = coalesce(e.subject, '')
                        AND f.study_uid = coalesce(e.study_uid, '') AND f.modality = coalesce(e.modality, '')
                        AND f.body_part = coalesce(e.body_part, '') AND f.manufacturer = coalesce(e.manufacturer, '')
                        AND f.sex = coalesce(e.sex, '');
                DROP TABLE entries;
                DROP TABLE facets;
                ALTER TABLE new_entries RENAME TO entries;
                ALTER TABLE new_facets RENAME TO facets;
                """)
        }
        migrator.registerMigration("v5-audit") { db in
            // The hub's own hash-chained audit log (CairnAudit): enrolments, grants, snapshots applied and refused.
            try db.execute(sql: AuditChain.tableSQL)
        }
        return migrator
    }

    func read<T>(_ body: (Database) throws -> T) throws -> T { try pool.read(body) }
    func write<T>(_ body: (Database) throws -> T) throws -> T { try pool.write(body) }

    /// Runs `body` in a write transaction, then `afterCommit` while still the only writer (so
    /// in-memory state follows commits in their order).
    func write<T>(_ body: (Database) throws -> T, afterCommit: (T) -> Void) throws -> T {
        try pool.writeWithoutTransaction { db in
            var result: T?
            try db.inTransaction {
                result = try body(db)
                return .commit
            }
            afterCommit(result!)
            return result!
        }
    }

    public func enroll(node: String, publicKey: String) throws {
        try write { db in
            try db.execute(sql: """
                INSERT INTO nodes (id, public_key, enrolled_at) VALUES (?, ?, ?)
                ON CONFLICT(id) DO UPDATE SET public_key = excluded.public_key
                """, arguments: [node, publicKey, Date().timeIntervalSince1970])
        }
    }

    public func publicKey(of node: String) throws -> String? {
        try read { db in try String.fetchOne(db, sql: "SELECT public_key FROM nodes WHERE id = ?", arguments: [node]) }
    }

    public func head(node: String, dataset: String) throws -> (seq: Int64, digest: String)? {
        try read { db in
            try Row.fetchOne(db, sql: "SELECT seq, digest FROM heads WHERE node = ? AND dataset = ?", arguments: [node, dataset])
                .map { ($0["seq"], $0["digest"]) }
        }
    }

    func reject(node: String, dataset: String, digest: String, reason: String) {
        _ = try? write { db in
            try db.execute(sql: "INSERT INTO rejections (at, node, dataset, digest, reason) VALUES (?, ?, ?, ?, ?)",
                           arguments: [Date().timeIntervalSince1970, node, dataset, digest, reason])
            try AuditChain.append([AuditEvent(actor: node, action: "snapshot.refuse", dataset: dataset, digest: digest,
                                              detail: reason)], in: SQLiteIndexConnection(db))
        }
    }

    // MARK: - Audit

    /// Appends admin actions (`hub enroll`, `hub grant`) to the hub's audit chain.
    public func appendAudit(_ events: [AuditEvent]) throws {
        try write { db in try AuditChain.append(events, in: SQLiteIndexConnection(db)) }
    }

    public func auditRecords(since: Date? = nil, _ body: ([AuditRecord]) throws -> Void) throws {
        try AuditChain.records(in: SQLiteIndexDatabase(pool: pool), since: since, body)
    }

    public func verifyAudit() throws -> AuditVerification { try AuditChain.verify(in: SQLiteIndexDatabase(pool: pool)) }
}
