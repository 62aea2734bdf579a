@testable import CairnAudit
import Foundation
import GRDB
import Testing
@testable import CairnStore

@Suite struct AuditLogTests {
    func events(_ count: Int, offset: Int = 0) -> [AuditEvent] {
        (0..<count).map { i in
            AuditEvent(actor: "job-\(i % 3)", action: i % 5 == 0 ? "deny" : "read", dataset: "ct", digest: "sha256:" + String(repeating: "a", count: 64),
                       range: i % 2 == 0 ? "0-\(i)" : nil, bytes: Int64(i + offset), status: 200, detail: i % 7 == 0 ? "quote \" and \\ and \n" : nil)
        }
    }

    @Test func chainVerifiesAcrossBatchesAndExportsInOrder() throws {
        let temp = try TempStore()
        defer { temp.cleanup() }
        try temp.store.appendAudit(events(10))
        try temp.store.appendAudit(events(25, offset: 100))
        let result = try temp.store.verifyAudit()
        #expect(result.records == 35)
        #expect(result.firstBad == nil)
        var seqs: [Int64] = []
        try temp.store.auditRecords(pageSize: 7) { page in seqs += page.map(\.seq) }
        #expect(seqs == Array(1...35))
    }

    @Test func editedRecordIsNamed() throws {
        let temp = try TempStore()
        defer { temp.cleanup() }
        try temp.store.appendAudit(events(20))
        try temp.store.index.write { db in try db.execute(sql: "UPDATE audit SET bytes = 999999 WHERE seq = 12") }
        #expect(try temp.store.verifyAudit().firstBad?.seq == 12)
    }

    @Test func removedRecordIsNamed() throws {
        let temp = try TempStore()
        defer { temp.cleanup() }
        try temp.store.appendAudit(events(20))
        try temp.store.index.write { db in try db.execute(sql: "DELETE FROM audit WHERE seq = 5") }
        #expect(try temp.store.verifyAudit().firstBad?.seq == 6)
    }

    /// Rewriting a record and recomputing its own hash still breaks the next record's link.
    @Test func rehashedRecordBreaksTheNextLink() throws {
        let temp = try TempStore()
        defer { temp.cleanup() }
        try temp.store.appendAudit(events(10))
        try temp.store.index.write { db in
            let previous = try String.fetchOne(db, sql: "SELECT hash FROM audit WHERE seq = 3")!
            var forged = AuditEvent(actor: "someone-else", action: "read", status: 200)
            forged.atMicroseconds = 1
            let hash = AuditRecord.chain(previous: previous, seq: 4, event: forged)
            try db.execute(sql: """
                UPDATE audit SET actor = 'someone-else', at_us = 1, dataset = NULL, digest = NULL, range = NULL, bytes = NULL,
                    detail = NULL, hash = ? WHERE seq = 4
                """, arguments: [hash])
        }
        #expect(try temp.store.verifyAudit().firstBad?.seq == 5)
    }

    @Test func revocationsArePolledIncrementally() throws {
        let temp = try TempStore()
        defer { temp.cleanup() }
        #expect(try temp.store.revokeToken("a"))
        #expect(try !temp.store.revokeToken("a"))
        let first = try temp.store.revokedTokens(after: 0)
        #expect(first.jtis == ["a"])
        try temp.store.revokeToken("b")
        #expect(try temp.store.revokedTokens(after: first.last).jtis == ["b"])
    }
}
