import CairnBlobs
import CairnFoundation
import Foundation
import CairnIndex
import GRDB

/// A blob's row in the index.
public struct BlobRecord: Sendable, Equatable {
    public enum State: String, Sendable {
        /// Present and, as far as the last check knows, intact.
        case ok
        /// The file was not found where it should be.
        case missing
        /// The file exists but fails its checksums or digest.
        case corrupt
    }

    public var digest: BlobDigest
    public var size: UInt64
    public var storedSize: UInt64
    public var codec: BlobCodec
    public var frames: Int
    public var state: State
    public var createdAt: Date
    /// The storage profile the blob was written under (nil: plain frames, raw, or written before profiles).
    public var profile: StorageProfile?

    init(digest: BlobDigest, size: UInt64, storedSize: UInt64, codec: BlobCodec, frames: Int, state: State, createdAt: Date,
         profile: StorageProfile? = nil) {
        self.digest = digest
        self.size = size
        self.storedSize = storedSize
        self.codec = codec
        self.frames = frames
        self.state = state
        self.createdAt = createdAt
        self.profile = profile
    }

    init(row: IndexRow) throws {
        digest = try BlobDigest(indexed: row["digest"])
        size = try row["size"] as UInt64
        storedSize = try row["stored_size"] as UInt64
        // An encoding this build does not know must not be read as raw bytes.
        guard let codec = BlobCodec(rawValue: try row["codec"]) else {
            throw StoreError.index("blob \(digest) has an unknown encoding '\(try row["codec"] as String? ?? "")'")
        }
        self.codec = codec
        frames = try row["frames"]
        state = State(rawValue: try row["state"]) ?? .corrupt
        createdAt = Date(timeIntervalSince1970: try row["created_at"])
        profile = row.hasColumn("profile") ? (try row["profile"] as String?).flatMap(StorageProfile.init) : nil
    }
}

/// The index: SQLite in the data directory (GRDB, WAL, synchronous=FULL so a reported commit
/// survives power loss), or a PostgreSQL database the store's servers share. Schema changes go
/// through migrations, from the first version on, the same names on both.
struct StoreIndex: Sendable {
    let database: any IndexDatabase
    /// Write transactions this process committed (see `BlobRecordMap`).
    let writes = IndexWriteCounter()

    init(path: String) throws {
        do {
            let pool = try DurableDatabase.open(path: path)
            try Self.migrator.migrate(pool)
            database = SQLiteIndexDatabase(pool: pool)
        } catch {
            throw StoreError.index("opening \(path): \(error)")
        }
    }

    /// Connects (the password from `PGPASSWORD`) and migrates.
    init(postgres target: PostgresTarget, allowPlaintext: Bool,
         environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        let database: PostgresIndexDatabase
        do {
            database = try PostgresIndexDatabase(target: target, password: environment["PGPASSWORD"], allowPlaintext: allowPlaintext)
        } catch {
            throw StoreError.index(error.description)
        }
        try Self.migrate(database)
        self.database = database
    }

    /// The store's index as `storage` places it; nil when it is a SQLite file not yet created.
    static func existing(root: String, storage: StorageConfig) throws -> StoreIndex? {
        switch storage.index {
        case .sqlite:
            return FileSystem.exists(root + "/index.sqlite") ? try StoreIndex(path: root + "/index.sqlite") : nil
        case .postgres(let target):
            return try StoreIndex(postgres: target, allowPlaintext: storage.indexAllowPlaintext)
        }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-blobs-datasets") { db in
            try db.execute(sql: """
                CREATE TABLE settings (
                    key TEXT PRIMARY KEY,
                    value TEXT NOT NULL
                ) WITHOUT ROWID;
                CREATE TABLE blobs (
                    digest TEXT PRIMARY KEY,
                    size INTEGER NOT NULL,
                    stored_size INTEGER NOT NULL,
                    codec TEXT NOT NULL,
                    frames INTEGER NOT NULL,
                    state TEXT NOT NULL DEFAULT 'ok',
                    created_at REAL NOT NULL,
                    verified_at REAL
                ) WITHOUT ROWID;
                CREATE INDEX blobs_state ON blobs(state) WHERE state != 'ok';
                CREATE TABLE datasets (
                    id TEXT PRIMARY KEY,
                    title TEXT,
                    created_at REAL NOT NULL
                ) WITHOUT ROWID;
                CREATE TABLE dataset_blobs (
                    dataset_id TEXT NOT NULL REFERENCES datasets(id),
                    digest TEXT NOT NULL,
                    name TEXT,
                    added_at REAL NOT NULL,
                    PRIMARY KEY (dataset_id, digest)
                ) WITHOUT ROWID;
                CREATE INDEX dataset_blobs_digest ON dataset_blobs(digest);
                """)
        }
        migrator.registerMigration("v2-instances-policies") { db in
            try db.execute(sql: """
                ALTER TABLE datasets ADD COLUMN description TEXT;
                ALTER TABLE datasets ADD COLUMN cancer_type TEXT;
                ALTER TABLE datasets ADD COLUMN deid_policy TEXT NOT NULL DEFAULT 'reject';
                CREATE TABLE instances (
                    dataset_id TEXT NOT NULL REFERENCES datasets(id),
                    digest TEXT NOT NULL,
                    subject TEXT,
                    study_uid TEXT,
                    series_uid TEXT,
                    sop_uid TEXT,
                    sop_class TEXT,
                    modality TEXT,
                    body_part TEXT,
                    manufacturer TEXT,
                    sex TEXT,
                    study_date TEXT,
                    rows INTEGER,
                    columns INTEGER,
                    frames INTEGER,
                    transfer_syntax TEXT,
                    pixel_data_offset INTEGER,
                    frame_offsets TEXT,
                    PRIMARY KEY (dataset_id, digest)
                ) WITHOUT ROWID;
                CREATE INDEX instances_subject ON instances(dataset_id, subject);
                CREATE INDEX instances_sop ON instances(sop_uid);
                CREATE TABLE erasures (
                    dataset_id TEXT NOT NULL,
                    subject TEXT NOT NULL,
                    instances INTEGER NOT NULL,
                    erased_at REAL NOT NULL
                );
                """)
        }
        migrator.registerMigration("v3-audit-revocations") { db in
            // Audit time is integer microseconds so the hash chain never depends on float formatting.
            // (AuditChain.tableSQL is the same table for databases created later; migrations stay as written.)
            try db.execute(sql: """
                CREATE TABLE audit (
                    seq INTEGER PRIMARY KEY,
                    at_us INTEGER NOT NULL,
                    actor TEXT NOT NULL,
                    action TEXT NOT NULL,
                    dataset TEXT,
                    digest TEXT,
                    range TEXT,
                    bytes INTEGER,
                    status INTEGER,
                    detail TEXT,
                    hash TEXT NOT NULL
                );
                CREATE INDEX audit_at ON audit(at_us);
                CREATE TABLE revoked_tokens (
                    jti TEXT NOT NULL UNIQUE,
                    revoked_at REAL NOT NULL
                );
                """)
        }
        migrator.registerMigration("v4-snapshots") { db in
            try db.execute(sql: """
                ALTER TABLE datasets ADD COLUMN manifest_attributes TEXT;
                CREATE TABLE snapshots (
                    dataset_id TEXT NOT NULL,
                    seq INTEGER NOT NULL,
                    digest TEXT NOT NULL UNIQUE,
                    parent TEXT,
                    document BLOB NOT NULL,
                    entries INTEGER NOT NULL,
                    created_at REAL NOT NULL,
                    PRIMARY KEY (dataset_id, seq)
                ) WITHOUT ROWID;
                CREATE TABLE published_entries (
                    dataset_id TEXT NOT NULL,
                    digest TEXT NOT NULL,
                    entry BLOB NOT NULL,
                    PRIMARY KEY (dataset_id, digest)
                ) WITHOUT ROWID;
                """)
        }
        migrator.registerMigration("v5-outbox") { db in
            // Snapshots waiting to reach the hub, written in the publish transaction: durable.
            try db.execute(sql: """
                CREATE TABLE outbox (
                    dataset_id TEXT NOT NULL,
                    seq INTEGER NOT NULL,
                    digest TEXT NOT NULL,
                    enqueued_at REAL NOT NULL,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    last_error TEXT,
                    PRIMARY KEY (dataset_id, seq)
                ) WITHOUT ROWID;
                """)
        }
        migrator.registerMigration("v6-gate-identity") { db in
            // allow_non_dicom: a gated dataset stores files that are not DICOM only when asked to.
            // outbox.halted: why the hub refused a push for a reason retrying cannot fix; the push
            // worker stops retrying that dataset until the node restarts.
            try db.execute(sql: """
                ALTER TABLE datasets ADD COLUMN allow_non_dicom INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE outbox ADD COLUMN halted TEXT;
                """)
        }
        migrator.registerMigration("v7-search") { db in
            // Federated search: which datasets take part and their diagnosis code, the patient's age
            // at the study, and a generation number every change to what a search reads moves on, so
            // a server's in-memory search facets know when another process changed the index.
            try db.execute(sql: """
                ALTER TABLE datasets ADD COLUMN searchable INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE datasets ADD COLUMN diagnosis TEXT;
                ALTER TABLE instances ADD COLUMN age_years REAL;
                INSERT OR IGNORE INTO settings (key, value) VALUES ('search_generation', '0');
                CREATE TRIGGER search_instance_added AFTER INSERT ON instances BEGIN
                    UPDATE settings SET value = value + 1 WHERE key = 'search_generation'; END;
                CREATE TRIGGER search_instance_removed AFTER DELETE ON instances BEGIN
                    UPDATE settings SET value = value + 1 WHERE key = 'search_generation'; END;
                CREATE TRIGGER search_dataset_changed AFTER UPDATE ON datasets BEGIN
                    UPDATE settings SET value = value + 1 WHERE key = 'search_generation'; END;
                """)
        }
        migrator.registerMigration("v8-content-generation") { db in
            // A per-dataset number that moves on whenever the dataset gains or loses a blob or an
            // instance row, or one of its blobs is stored again (another codec or size) or marked
            // damaged, so views kept in another process (`cairn mount`) know which listings to re-read.
            try db.execute(sql: """
                ALTER TABLE datasets ADD COLUMN content_generation INTEGER NOT NULL DEFAULT 0;
                CREATE TRIGGER content_blob_added AFTER INSERT ON dataset_blobs BEGIN
                    UPDATE datasets SET content_generation = content_generation + 1 WHERE id = NEW.dataset_id; END;
                CREATE TRIGGER content_blob_removed AFTER DELETE ON dataset_blobs BEGIN
                    UPDATE datasets SET content_generation = content_generation + 1 WHERE id = OLD.dataset_id; END;
                CREATE TRIGGER content_instance_added AFTER INSERT ON instances BEGIN
                    UPDATE datasets SET content_generation = content_generation + 1 WHERE id = NEW.dataset_id; END;
                CREATE TRIGGER content_instance_removed AFTER DELETE ON instances BEGIN
                    UPDATE datasets SET content_generation = content_generation + 1 WHERE id = OLD.dataset_id; END;
                CREATE TRIGGER content_blob_changed AFTER UPDATE OF size, codec, state ON blobs BEGIN
                    UPDATE datasets SET content_generation = content_generation + 1
                        WHERE id IN (SELECT dataset_id FROM dataset_blobs WHERE digest = NEW.digest); END;
                """)
        }
        migrator.registerMigration("v9-dicomweb") { db in
            // DICOMweb: the QIDO-RS matching keys not indexed before, what a search returns at each
            // level (DICOM JSON members), the length of a native frame (so WADO-RS cuts frames
            // from the index alone), and the indexes a search by study, series, modality and
            // date needs. Rows from before stay without the returned attributes: a search still
            // finds them by the older columns and answers what it has (see the README).
            try db.execute(sql: """
                ALTER TABLE instances ADD COLUMN patient_name TEXT;
                ALTER TABLE instances ADD COLUMN accession_number TEXT;
                ALTER TABLE instances ADD COLUMN study_id TEXT;
                ALTER TABLE instances ADD COLUMN study_time TEXT;
                ALTER TABLE instances ADD COLUMN series_number INTEGER;
                ALTER TABLE instances ADD COLUMN instance_number INTEGER;
                ALTER TABLE instances ADD COLUMN study_attributes TEXT;
                ALTER TABLE instances ADD COLUMN series_attributes TEXT;
                ALTER TABLE instances ADD COLUMN instance_attributes TEXT;
                ALTER TABLE instances ADD COLUMN frame_length INTEGER;
                ALTER TABLE instances ADD COLUMN referring_physician TEXT;
                ALTER TABLE instances ADD COLUMN study_description TEXT;
                CREATE INDEX instances_study ON instances(dataset_id, study_uid, series_uid);
                CREATE INDEX instances_series ON instances(dataset_id, series_uid);
                CREATE INDEX instances_modality_date ON instances(dataset_id, modality, study_date);
                CREATE INDEX instances_date ON instances(dataset_id, study_date);
                CREATE INDEX instances_before_v9 ON instances(dataset_id, digest) WHERE study_attributes IS NULL;
                CREATE INDEX instances_unattributed ON instances(dataset_id)
                    WHERE study_attributes IS NULL OR study_attributes = '';
                """)
        }
        migrator.registerMigration("v10-storage-profiles") { db in
            // The profile each blob was written under (so `cairn recompress` can resume by skipping
            // what is done) and each dataset's chosen profile (nil: the default, balanced).
            try db.execute(sql: """
                ALTER TABLE blobs ADD COLUMN profile TEXT;
                ALTER TABLE datasets ADD COLUMN storage_profile TEXT;
                """)
        }
        migrator.registerMigration("v11-deidentification-policy") { db in
            // What a gated dataset accepts of the Basic Profile (CID 7050 options by name, a
            // pseudonym pattern, two waivers), and the instances `gate rescan --quarantine` took out
            // of a dataset: held (gc keeps their blobs) but not served, published, mounted or counted.
            try db.execute(sql: """
                ALTER TABLE datasets ADD COLUMN deid_options TEXT NOT NULL DEFAULT '';
                ALTER TABLE datasets ADD COLUMN pseudonym_pattern TEXT;
                ALTER TABLE datasets ADD COLUMN allow_embedded_documents INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE datasets ADD COLUMN allow_unstated_burned_in INTEGER NOT NULL DEFAULT 0;
                CREATE TABLE quarantine (
                    dataset_id TEXT NOT NULL REFERENCES datasets(id),
                    digest TEXT NOT NULL,
                    name TEXT,
                    subject TEXT,
                    reason TEXT NOT NULL,
                    quarantined_at REAL NOT NULL,
                    PRIMARY KEY (dataset_id, digest)
                ) WITHOUT ROWID;
                CREATE INDEX quarantine_digest ON quarantine(digest);
                """)
        }
        migrator.registerMigration("v12-text-review") { db in
            // Kept text values a gated dataset's reviewer accepted (`cairn gate review`), keyed by
            // the value's SHA-256 so a long text fits an index; on for every dataset unless waived.
            try db.execute(sql: """
                ALTER TABLE datasets ADD COLUMN text_review INTEGER NOT NULL DEFAULT 1;
                CREATE TABLE reviewed_text (
                    dataset_id TEXT NOT NULL REFERENCES datasets(id),
                    tag INTEGER NOT NULL,
                    value_sha256 TEXT NOT NULL,
                    value TEXT NOT NULL,
                    reviewed_at REAL NOT NULL,
                    PRIMARY KEY (dataset_id, tag, value_sha256)
                ) WITHOUT ROWID;
                """)
        }
        return migrator
    }

    func read<T>(_ body: (any IndexConnection) throws -> T) throws -> T { try indexErrors { try database.read(body) } }

    func write<T>(_ body: (any IndexConnection) throws -> T) throws -> T {
        defer { writes.increment() }
        return try indexErrors { try database.write(body) }
    }

    /// One-statement lookups need no explicit transaction: each statement is atomic on its own.
    func readStatement<T>(_ body: (any IndexConnection) throws -> T) throws -> T { try indexErrors { try database.readStatement(body) } }

    /// Store errors raised inside a transaction pass through; SQLite's become `StoreError.index`.
    private func indexErrors<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as StoreError { throw error } catch {
            throw StoreError.index("\(error)")
        }
    }

    static func blob(_ db: any IndexConnection, _ digest: BlobDigest) throws -> BlobRecord? {
        let statement = try db.cachedStatement(sql: "SELECT * FROM blobs WHERE digest = ?")
        return try IndexRow.fetchOne(statement, arguments: [digest.hex]).map(BlobRecord.init)
    }


    static func upsertBlob(_ blob: WrittenBlob, now: Date) -> IndexStatementText {
        IndexStatementText("""
            INSERT INTO blobs (digest, size, stored_size, codec, frames, state, created_at, profile)
            VALUES (?, ?, ?, ?, ?, 'ok', ?, ?)
            ON CONFLICT(digest) DO UPDATE SET
                size = excluded.size, stored_size = excluded.stored_size, codec = excluded.codec,
                frames = excluded.frames, state = 'ok', verified_at = NULL, profile = excluded.profile
            """, [blob.digest.hex, Int64(blob.size), Int64(blob.storedSize), blob.codec.rawValue,
                  blob.frames, now.timeIntervalSince1970, blob.profile?.rawValue])
    }

    static func addToDataset(_ staged: StagedBlob, now: Date) -> IndexStatementText {
        IndexStatementText("""
            INSERT INTO dataset_blobs(dataset_id, digest, name, added_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING
            """, [staged.dataset, staged.blob.digest.hex, staged.name, now.timeIntervalSince1970])
    }

    /// The datasets of `batch` that exist, looked up once per commit (inside it: under the write lock).
    static func existingDatasets(_ db: any IndexConnection, of batch: [StagedBlob]) throws -> Set<String> {
        let names = Array(Set(batch.map(\.dataset)))
        if names.isEmpty { return [] }
        return Set(try String.fetchAll(db, sql: "SELECT id FROM datasets WHERE id IN (\(names.map { _ in "?" }.joined(separator: ",")))",
                                       arguments: IndexArguments(names)))
    }

    static func setState(_ db: any IndexConnection, _ digest: BlobDigest, _ state: BlobRecord.State, verifiedAt: Date?) throws {
        try db.execute(sql: "UPDATE blobs SET state = ?, verified_at = COALESCE(?, verified_at) WHERE digest = ?",
                       arguments: [state.rawValue, verifiedAt?.timeIntervalSince1970, digest.hex])
    }
}
