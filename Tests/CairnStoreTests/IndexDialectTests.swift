@testable import CairnIndex
import Foundation
import Testing
@testable import CairnStore

/// The pieces of the PostgreSQL index that need no server: placeholders, script splitting, the
/// index URL (no password in it, ever), DICOM wildcards as LIKE patterns, and row decoding.
@Suite struct IndexDialectTests {
    @Test func placeholdersAreNumberedOutsideQuotes() {
        #expect(PostgresIndexConnection.numbered("SELECT a FROM t WHERE b = ? AND c = '?' AND \"d?\" = ? LIMIT ?")
            == "SELECT a FROM t WHERE b = $1 AND c = '?' AND \"d?\" = $2 LIMIT $3")
        #expect(PostgresIndexConnection.numbered("x LIKE ? ESCAPE '\\'") == "x LIKE $1 ESCAPE '\\'")
        #expect(PostgresIndexConnection.numbered("SELECT ? -- why?\n, ? /* ? */ , ?") == "SELECT $1 -- why?\n, $2 /* ? */ , $3")
    }

    @Test func scriptsSplitAtSemicolonsOutsideQuotesAndFunctionBodies() {
        let script = """
            CREATE TABLE a (x TEXT DEFAULT ';');
            CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN UPDATE a SET x = 'y'; RETURN NULL; END $$;
            CREATE TRIGGER t AFTER INSERT ON a FOR EACH ROW EXECUTE FUNCTION f();
            """
        let statements = PostgresIndexConnection.statements(script)
        #expect(statements.count == 3)
        #expect(statements[1].hasSuffix("END $$"))
        #expect(statements[0] == "CREATE TABLE a (x TEXT DEFAULT ';')")
    }

    @Test func everyMigrationHasBothEnginesAndTheSameNames() throws {
        let names = StoreIndex.postgresMigrations.map(\.name)
        #expect(Set(names).count == names.count)
        // The same migrations, in the same order, as the SQLite side registers.
        #expect(names == StoreIndex.migrator.migrations)
        for migration in StoreIndex.postgresMigrations {
            #expect(!PostgresIndexConnection.statements(migration.sql).isEmpty, "\(migration.name)")
        }
    }

    @Test func indexURLsNameUserHostAndDatabaseAndNeverAPassword() throws {
        let target = try PostgresTarget(parsing: "postgres://cairn@db.example.org:6543/index")
        #expect(target.user == "cairn" && target.host == "db.example.org" && target.port == 6543 && target.database == "index")
        #expect(try PostgresTarget(parsing: "postgresql://u@h/d").port == 5432)
        for bad in ["postgres://h/d", "postgres://u@h", "postgres://u@h/", "mysql://u@h/d", "postgres://u@h/d?sslmode=disable"] {
            #expect(throws: IndexError.self, "\(bad)") { try PostgresTarget(parsing: bad) }
        }
        // libpq's query form of a password is refused too, and not repeated.
        do {
            _ = try PostgresTarget(parsing: "postgres://u@h/d?password=hunter3")
            Issue.record("a query in the URL was accepted")
        } catch {
            #expect(!error.description.contains("hunter3"))
        }
        do {
            _ = try PostgresTarget(parsing: "postgres://u:hunter2@h/d")
            Issue.record("a password in the URL was accepted")
        } catch {
            #expect(!error.description.contains("hunter2"))
            #expect(error.description.contains("PGPASSWORD"))
        }
    }

    @Test func configRefusesAPasswordAndPlaintextOnlyWhenNamed() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-cfg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        func load(_ json: String) throws -> StorageConfig {
            let path = directory.appendingPathComponent("c.json").path
            try Data(json.utf8).write(to: URL(fileURLWithPath: path))
            return try StorageConfig.load(path: path).config
        }
        let config = try load(#"{"index": "postgres://cairn@127.0.0.1:5432/cairn"}"#)
        #expect(config.index == .postgres(try PostgresTarget(parsing: "postgres://cairn@127.0.0.1:5432/cairn")))
        #expect(config.indexAllowPlaintext == false)
        #expect(try load(#"{"index": "postgres://c@h/d", "index_allow_plaintext": true}"#).indexAllowPlaintext)
        #expect(throws: StoreError.self) { try load(#"{"index_allow_plaintext": true}"#) }
        #expect(throws: StoreError.self) { try load(#"{"index": "postgres://c:secret@h/d"}"#) }
        #expect(throws: StoreError.self) { try load(#"{"index": "mysql://c@h/d"}"#) }
    }

    @Test func dicomWildcardsBecomeLikePatternsWithTheirOwnCharactersEscaped() {
        #expect(InstanceQuery.likePattern("CT*") == "CT%")
        #expect(InstanceQuery.likePattern("A?C") == "A_C")
        #expect(InstanceQuery.likePattern("50%_\\x*") == "50\\%\\_\\\\x%")
    }

    @Test func rowsDecodeWithTypedErrorsNotTraps() throws {
        let row = IndexRow(columns: ["n", "s", "b", "r", "z"], values: [.integer(7), .text("x"), .blob([1, 2]), .real(2.0), .null])
        #expect(try row["n"] as Int == 7)
        #expect(try row["r"] as Int64 == 2)
        #expect(try row["s"] as String == "x")
        #expect(try row["b"] as [UInt8] == [1, 2])
        #expect(try row["z"] as String? == nil)
        #expect(throws: IndexError.self) { try row["s"] as Int }
        #expect(throws: IndexError.self) { try row["z"] as String }
        #expect(throws: IndexError.self) { try row["missing"] as Int }
        #expect(throws: IndexError.self) { try IndexRow(columns: ["size"], values: [.integer(-1)])["size"] as UInt64 }
    }
}
