@testable import CairnIndex
import CairnAudit
import Foundation
import Synchronization
import Testing
@testable import CairnStore

/// The PostgreSQL index against a real server (CAIRN_TEST_PG_URL; skipped without one unless
/// CAIRN_REQUIRE_PG=1): what SQLite did by nature that PostgreSQL must be made to do.
@Suite struct PostgresIndexTests {
    /// A new store with its index in a new database, or nil without a server.
    static func store() throws -> (root: String, store: BlobStore, target: PostgresTarget)? {
        guard let target = try PostgresTestDatabase.create() else { return nil }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-pg-\(UUID().uuidString)").path
        let store = try BlobStore.initialize(at: root, storage: StorageConfig(index: .postgres(target), indexAllowPlaintext: true))
        return (root, store, target)
    }

    @Test func writersAreSerialisedAcrossConnections() throws {
        guard let (root, store, _) = try Self.store() else { return }
        defer { try? FileManager.default.removeItem(atPath: root) }
        try store.index.write { db in try db.execute(sql: "INSERT INTO settings(key, value) VALUES ('counter', '0')") }
        // Read-modify-write from 8 threads: without the writers' lock, increments would be lost.
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            for _ in 0..<25 {
                try? store.index.write { db in
                    let value = try Int64.fetchOne(db, sql: "SELECT CAST(value AS BIGINT) FROM settings WHERE key = 'counter'") ?? 0
                    try db.execute(sql: "UPDATE settings SET value = ? WHERE key = 'counter'", arguments: [String(value + 1)])
                }
            }
        }
        #expect(try store.index.read { db in try String.fetchOne(db, sql: "SELECT value FROM settings WHERE key = 'counter'") } == "200")
    }

    @Test func aTransactionWhoseStatementFailedIsNeverReportedCommitted() throws {
        guard let (root, store, _) = try Self.store() else { return }
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect(throws: (any Error).self) {
            try store.index.write { db in
                try db.execute(sql: "INSERT INTO settings(key, value) VALUES ('kept', '1')")
                // The error is swallowed, as a careless caller might: PostgreSQL has aborted the transaction.
                try? db.execute(sql: "INSERT INTO no_such_table VALUES (1)")
            }
        }
        #expect(try store.index.read { db in try String.fetchOne(db, sql: "SELECT value FROM settings WHERE key = 'kept'") } == nil)
        // The connection went back to the pool usable.
        #expect(try store.index.read { db in try Int.fetchOne(db, sql: "SELECT 1") } == 1)
    }

    /// The write path's per-file batches: one that fails leaves nothing of itself, and the files
    /// before and after it in the same commit stay.
    @Test func aFailedAtomicBatchLeavesNothingAndTheRestCommits() throws {
        guard let (root, store, _) = try Self.store() else { return }
        defer { try? FileManager.default.removeItem(atPath: root) }
        let insert = "INSERT INTO settings(key, value) VALUES (?, ?)"
        try store.index.write { db in
            try db.executeAtomically([IndexStatementText(insert, ["a", "1"])])
            #expect(throws: IndexError.self) {
                try db.executeAtomically([IndexStatementText(insert, ["b", "1"]), IndexStatementText(insert, ["a", "again"])])
            }
            try db.executeAtomically([IndexStatementText(insert, ["c", "1"])])
        }
        let keys = try store.index.read { db in try String.fetchAll(db, sql: "SELECT key FROM settings WHERE key IN ('a', 'b', 'c') ORDER BY key") }
        #expect(keys == ["a", "c"])
    }

    @Test func textWithANulIsRefusedByNameAndAuditEventsAreCleanedOfIt() throws {
        guard let (root, store, _) = try Self.store() else { return }
        defer { try? FileManager.default.removeItem(atPath: root) }
        do {
            try store.index.write { db in try db.execute(sql: "INSERT INTO settings(key, value) VALUES (?, 'x')", arguments: ["a\u{0}b"]) }
            Issue.record("a NUL in text was accepted")
        } catch {
            #expect("\(error)".contains("NUL"))
        }
        try store.appendAudit([AuditEvent(actor: "job", action: "deny", status: 422, detail: "unknown parameter \u{0}x")])
        var details: [String?] = []
        try store.auditRecords { page in details += page.map(\.event.detail) }
        #expect(details == ["unknown parameter \u{FFFD}x"])
        #expect(try store.verifyAudit().firstBad == nil)
    }

    @Test func aDatabaseThatSortsByLocaleIsRefused() throws {
        guard let server = ProcessInfo.processInfo.environment["CAIRN_TEST_PG_URL"] else { return }
        let name = "cairn_icu_" + UUID().uuidString.prefix(8).lowercased()
        let admin = try PostgresIndexDatabase(target: PostgresTarget(parsing: server + "/postgres"), password: nil, allowPlaintext: true)
        try admin.readStatement { db in
            try db.execute(sql: "CREATE DATABASE \(name) TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'")
        }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-icu-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        do {
            _ = try BlobStore.initialize(at: root, storage: StorageConfig(index: .postgres(try PostgresTarget(parsing: server + "/" + name)),
                                                                          indexAllowPlaintext: true))
            Issue.record("an ICU-collated database was accepted")
        } catch {
            #expect("\(error)".contains("LOCALE_PROVIDER libc"))
        }
    }

    @Test func fileBlobsUnderASharedIndexMustBeOneSharedDirectory() throws {
        guard let (root, store, target) = try Self.store() else { return }
        defer { try? FileManager.default.removeItem(atPath: root) }
        let blob = try store.put(bytes: Array("shared".utf8))
        let storage = StorageConfig(index: .postgres(target), indexAllowPlaintext: true)
        // A second host with a blobs/ of its own is refused: it would hold none of the store's blobs.
        let other = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-pg-other-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: other) }
        #expect(throws: StoreError.self) { try BlobStore.initialize(at: other, storage: storage) }
        // The same directory (as a shared mount would be) opens and reads.
        let again = try BlobStore.open(at: root, storage: storage)
        #expect(try again.reader(blob.blob.digest).bytes(0..<6) == Array("shared".utf8))
    }

    @Test func sampledVerifyChecksAboutThatShare() throws {
        guard let (root, store, _) = try Self.store() else { return }
        defer { try? FileManager.default.removeItem(atPath: root) }
        for i in 0..<200 { _ = try store.put(bytes: Array("blob \(i)".utf8)) }
        let sampled = try store.digestsToVerify(samplePercent: 10).count
        #expect(sampled < 100, "a 10% sample took \(sampled) of 200")
        #expect(try store.digestsToVerify(samplePercent: nil).count == 200)
    }
}
