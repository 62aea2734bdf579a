import CairnIndex
import Foundation

/// The index's schema on PostgreSQL: the same migrations as SQLite's (`StoreIndex.migrator`),
/// under the same names, in PostgreSQL's types (BIGINT, DOUBLE PRECISION, BYTEA; an identity
/// column where SQLite had an implicit rowid; trigger functions for SQLite's triggers). A new
/// migration is added to both lists.
extension StoreIndex {
    static let postgresMigrations: [(name: String, sql: String)] = [
        ("v1-blobs-datasets", """
            CREATE TABLE settings (
                key TEXT PRIMARY KEY,
                value TEXT NOT NULL
            );
            CREATE TABLE blobs (
                digest TEXT PRIMARY KEY,
                size BIGINT NOT NULL,
                stored_size BIGINT NOT NULL,
                codec TEXT NOT NULL,
                frames BIGINT NOT NULL,
                state TEXT NOT NULL DEFAULT 'ok',
                created_at DOUBLE PRECISION NOT NULL,
                verified_at DOUBLE PRECISION
            );
            CREATE INDEX blobs_state ON blobs(state) WHERE state != 'ok';
            CREATE TABLE datasets (
                id TEXT PRIMARY KEY,
                title TEXT,
                created_at DOUBLE PRECISION NOT NULL
            );
            CREATE TABLE dataset_blobs (
                dataset_id TEXT NOT NULL REFERENCES datasets(id),
                digest TEXT NOT NULL,
                name TEXT,
                added_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (dataset_id, digest)
            );
            CREATE INDEX dataset_blobs_digest ON dataset_blobs(digest);
            """),
        ("v2-instances-policies", """
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
                rows BIGINT,
                columns BIGINT,
                frames BIGINT,
                transfer_syntax TEXT,
                pixel_data_offset BIGINT,
                frame_offsets TEXT,
                PRIMARY KEY (dataset_id, digest)
            );
            CREATE INDEX instances_subject ON instances(dataset_id, subject);
            CREATE INDEX instances_sop ON instances(sop_uid);
            CREATE TABLE erasures (
                rowid BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                dataset_id TEXT NOT NULL,
                subject TEXT NOT NULL,
                instances BIGINT NOT NULL,
                erased_at DOUBLE PRECISION NOT NULL
            );
            """),
        ("v3-audit-revocations", """
            CREATE TABLE audit (
                seq BIGINT PRIMARY KEY,
                at_us BIGINT NOT NULL,
                actor TEXT NOT NULL,
                action TEXT NOT NULL,
                dataset TEXT,
                digest TEXT,
                range TEXT,
                bytes BIGINT,
                status BIGINT,
                detail TEXT,
                hash TEXT NOT NULL
            );
            CREATE INDEX audit_at ON audit(at_us);
            CREATE TABLE revoked_tokens (
                rowid BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                jti TEXT NOT NULL UNIQUE,
                revoked_at DOUBLE PRECISION NOT NULL
            );
            """),
        ("v4-snapshots", """
            ALTER TABLE datasets ADD COLUMN manifest_attributes TEXT;
            CREATE TABLE snapshots (
                dataset_id TEXT NOT NULL,
                seq BIGINT NOT NULL,
                digest TEXT NOT NULL UNIQUE,
                parent TEXT,
                document BYTEA NOT NULL,
                entries BIGINT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (dataset_id, seq)
            );
            CREATE TABLE published_entries (
                dataset_id TEXT NOT NULL,
                digest TEXT NOT NULL,
                entry BYTEA NOT NULL,
                PRIMARY KEY (dataset_id, digest)
            );
            """),
        ("v5-outbox", """
            CREATE TABLE outbox (
                dataset_id TEXT NOT NULL,
                seq BIGINT NOT NULL,
                digest TEXT NOT NULL,
                enqueued_at DOUBLE PRECISION NOT NULL,
                attempts BIGINT NOT NULL DEFAULT 0,
                last_error TEXT,
                PRIMARY KEY (dataset_id, seq)
            );
            """),
        ("v6-gate-identity", """
            ALTER TABLE datasets ADD COLUMN allow_non_dicom BIGINT NOT NULL DEFAULT 0;
            ALTER TABLE outbox ADD COLUMN halted TEXT;
            """),
        ("v7-search", """
            ALTER TABLE datasets ADD COLUMN searchable BIGINT NOT NULL DEFAULT 0;
            ALTER TABLE datasets ADD COLUMN diagnosis TEXT;
            ALTER TABLE instances ADD COLUMN age_years DOUBLE PRECISION;
            INSERT INTO settings (key, value) VALUES ('search_generation', '0') ON CONFLICT DO NOTHING;
            CREATE FUNCTION cairn_search_generation() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    UPDATE settings SET value = (value::bigint + 1)::text WHERE key = 'search_generation';
                    RETURN NULL;
                END $$;
            CREATE TRIGGER search_instance_added AFTER INSERT ON instances
                FOR EACH ROW EXECUTE FUNCTION cairn_search_generation();
            CREATE TRIGGER search_instance_removed AFTER DELETE ON instances
                FOR EACH ROW EXECUTE FUNCTION cairn_search_generation();
            CREATE TRIGGER search_dataset_changed AFTER UPDATE ON datasets
                FOR EACH ROW EXECUTE FUNCTION cairn_search_generation();
            """),
        ("v8-content-generation", """
            ALTER TABLE datasets ADD COLUMN content_generation BIGINT NOT NULL DEFAULT 0;
            CREATE FUNCTION cairn_content_added() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    UPDATE datasets SET content_generation = content_generation + 1 WHERE id = NEW.dataset_id;
                    RETURN NULL;
                END $$;
            CREATE FUNCTION cairn_content_removed() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    UPDATE datasets SET content_generation = content_generation + 1 WHERE id = OLD.dataset_id;
                    RETURN NULL;
                END $$;
            CREATE FUNCTION cairn_content_blob_changed() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    UPDATE datasets SET content_generation = content_generation + 1
                        WHERE id IN (SELECT dataset_id FROM dataset_blobs WHERE digest = NEW.digest);
                    RETURN NULL;
                END $$;
            CREATE TRIGGER content_blob_added AFTER INSERT ON dataset_blobs
                FOR EACH ROW EXECUTE FUNCTION cairn_content_added();
            CREATE TRIGGER content_blob_removed AFTER DELETE ON dataset_blobs
                FOR EACH ROW EXECUTE FUNCTION cairn_content_removed();
            CREATE TRIGGER content_instance_added AFTER INSERT ON instances
                FOR EACH ROW EXECUTE FUNCTION cairn_content_added();
            CREATE TRIGGER content_instance_removed AFTER DELETE ON instances
                FOR EACH ROW EXECUTE FUNCTION cairn_content_removed();
            CREATE TRIGGER content_blob_changed AFTER UPDATE OF size, codec, state ON blobs
                FOR EACH ROW EXECUTE FUNCTION cairn_content_blob_changed();
            """),
        ("v9-dicomweb", """
            ALTER TABLE instances ADD COLUMN patient_name TEXT;
            ALTER TABLE instances ADD COLUMN accession_number TEXT;
            ALTER TABLE instances ADD COLUMN study_id TEXT;
            ALTER TABLE instances ADD COLUMN study_time TEXT;
            ALTER TABLE instances ADD COLUMN series_number BIGINT;
            ALTER TABLE instances ADD COLUMN instance_number BIGINT;
            ALTER TABLE instances ADD COLUMN study_attributes TEXT;
            ALTER TABLE instances ADD COLUMN series_attributes TEXT;
            ALTER TABLE instances ADD COLUMN instance_attributes TEXT;
            ALTER TABLE instances ADD COLUMN frame_length BIGINT;
            ALTER TABLE instances ADD COLUMN referring_physician TEXT;
            ALTER TABLE instances ADD COLUMN study_description TEXT;
            CREATE INDEX instances_study ON instances(dataset_id, study_uid, series_uid);
            CREATE INDEX instances_series ON instances(dataset_id, series_uid);
            CREATE INDEX instances_modality_date ON instances(dataset_id, modality, study_date);
            CREATE INDEX instances_date ON instances(dataset_id, study_date);
            CREATE INDEX instances_before_v9 ON instances(dataset_id, digest) WHERE study_attributes IS NULL;
            CREATE INDEX instances_unattributed ON instances(dataset_id)
                WHERE study_attributes IS NULL OR study_attributes = '';
            """),
        ("v10-storage-profiles", """
            ALTER TABLE blobs ADD COLUMN profile TEXT;
            ALTER TABLE datasets ADD COLUMN storage_profile TEXT;
            """),
        ("v11-deidentification-policy", """
            ALTER TABLE datasets ADD COLUMN deid_options TEXT NOT NULL DEFAULT '';
            ALTER TABLE datasets ADD COLUMN pseudonym_pattern TEXT;
            ALTER TABLE datasets ADD COLUMN allow_embedded_documents BIGINT NOT NULL DEFAULT 0;
            ALTER TABLE datasets ADD COLUMN allow_unstated_burned_in BIGINT NOT NULL DEFAULT 0;
            CREATE TABLE quarantine (
                dataset_id TEXT NOT NULL REFERENCES datasets(id),
                digest TEXT NOT NULL,
                name TEXT,
                subject TEXT,
                reason TEXT NOT NULL,
                quarantined_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (dataset_id, digest)
            );
            CREATE INDEX quarantine_digest ON quarantine(digest);
            """),
        ("v12-text-review", """
            ALTER TABLE datasets ADD COLUMN text_review BIGINT NOT NULL DEFAULT 1;
            CREATE TABLE reviewed_text (
                dataset_id TEXT NOT NULL REFERENCES datasets(id),
                tag BIGINT NOT NULL,
                value_sha256 TEXT NOT NULL,
                value TEXT NOT NULL,
                reviewed_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (dataset_id, tag, value_sha256)
            );
            """),
    ]

    /// Brings a PostgreSQL index up to date: each migration not yet recorded runs in its own
    /// write transaction (under the writers' advisory lock, so servers starting together apply
    /// each once). The database must compare text bytewise (`C` collation): digests, UIDs and
    /// names are paged and ordered with `>` and ORDER BY, and Swift compares them bytewise.
    static func migrate(_ database: PostgresIndexDatabase) throws {
        // An ICU database reports datcollate 'C' but sorts by its ICU locale: the provider must be libc's.
        let collation = try database.readStatement { db in
            try IndexRow.fetchOne(db, sql: """
                SELECT datcollate, datlocprovider::text AS provider FROM pg_database WHERE datname = current_database()
                """)
        }
        let name: String? = try collation?["datcollate"], provider: String? = try collation?["provider"]
        guard name == "C" || name == "POSIX", provider == "c" else {
            throw StoreError.index(
                "the index database \(database.target) sorts text by locale (\(name ?? "unknown"), provider \(provider ?? "unknown")); create it with the C collation: CREATE DATABASE … TEMPLATE template0 LOCALE_PROVIDER libc LC_COLLATE 'C' LC_CTYPE 'C'")
        }
        // Every command opens the index: when nothing is missing, one read says so.
        let applied = try database.readStatement { db -> Set<String> in
            guard try String.fetchOne(db, sql: "SELECT to_regclass('cairn_migrations')::text") != nil else { return [] }
            return Set(try String.fetchAll(db, sql: "SELECT name FROM cairn_migrations"))
        }
        if postgresMigrations.allSatisfy({ applied.contains($0.name) }) { return }
        try database.write { db in
            try db.execute(sql: "CREATE TABLE IF NOT EXISTS cairn_migrations (name TEXT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)")
        }
        for migration in postgresMigrations {
            try database.write { db in
                guard try Bool.fetchOne(db, sql: "SELECT 1 FROM cairn_migrations WHERE name = ?", arguments: [migration.name]) == nil else {
                    return
                }
                try db.execute(sql: migration.sql)
                try db.execute(sql: "INSERT INTO cairn_migrations (name, applied_at) VALUES (?, ?)",
                               arguments: [migration.name, Date().timeIntervalSince1970])
            }
        }
    }
}
