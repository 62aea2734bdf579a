import CairnAudit
import Foundation
import CairnIndex

extension BlobStore {
    /// Appends events to the node's audit chain in one transaction.
    public func appendAudit(_ events: [AuditEvent]) throws {
        if events.isEmpty { return }
        try index.write { db in try AuditChain.append(events, in: db) }
    }

    /// Records from `since` on, oldest first, a page at a time.
    public func auditRecords(since: Date? = nil, pageSize: Int = 10_000, _ body: ([AuditRecord]) throws -> Void) throws {
        try AuditChain.records(in: index.database, since: since, pageSize: pageSize, body)
    }

    /// Recomputes the whole chain.
    public func verifyAudit() throws -> AuditVerification { try AuditChain.verify(in: index.database) }

    /// Rows in the audit log, for metrics.
    public func auditCount() throws -> Int64 { try AuditChain.count(in: index.database) }

    // MARK: - Revoked tokens

    /// Records a token id as revoked; true when it was not revoked before.
    @discardableResult
    public func revokeToken(_ jti: String) throws -> Bool {
        try index.write { db in
            try db.execute(sql: "INSERT INTO revoked_tokens (jti, revoked_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                           arguments: [jti, Date().timeIntervalSince1970])
            return db.changesCount > 0
        }
    }

    /// Token ids revoked after row `after` (0: all), with the last row seen, so a server can poll cheaply.
    public func revokedTokens(after: Int64) throws -> (jtis: [String], last: Int64) {
        try index.read { db in
            let rows = try IndexRow.fetchAll(db, sql: "SELECT rowid, jti FROM revoked_tokens WHERE rowid > ? ORDER BY rowid",
                                        arguments: [after])
            return (try rows.map { try $0["jti"] }, try rows.last?["rowid"] ?? after)
        }
    }
}
