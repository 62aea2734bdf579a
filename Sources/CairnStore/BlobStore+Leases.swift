import Foundation
import CairnIndex

/// Named leases in the index, for work that must happen once however many processes share it
/// (several node servers over one index; a `cairn gc` next to them): gc, the replication push.
/// A lease is `holder expiry` under `settings.<name>_lease`; taking one is a write transaction,
/// so two takers are ordered, and one whose holder died lapses at its expiry. Expiries are wall
/// clock seconds: servers sharing an index need synchronised clocks (NTP), as their tokens do.
extension BlobStore {
    /// Takes the lease `name` for `seconds` if it is free, lapsed, or already `holder`'s (which
    /// renews it). False when another holder's lease is still running.
    public func takeLease(_ name: String, holder: String, for seconds: TimeInterval) throws -> Bool {
        let key = name + "_lease", now = Date().timeIntervalSince1970
        return try index.write { db in
            if let lease = try Self.lease(db, key), lease.expiry > now, lease.holder != holder { return false }
            try db.execute(sql: "INSERT INTO settings(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", arguments: [key, "\(holder) \(now + seconds)"])
            return true
        }
    }

    /// Gives the lease up, if `holder` still holds it.
    public func releaseLease(_ name: String, holder: String) throws {
        try index.write { db in
            let key = name + "_lease"
            guard try Self.lease(db, key)?.holder == holder else { return }
            try db.execute(sql: "DELETE FROM settings WHERE key = ?", arguments: [key])
        }
    }

    /// Who holds the lease `name` now, if anyone (for status and tests).
    public func leaseHolder(_ name: String) throws -> String? {
        let now = Date().timeIntervalSince1970
        return try index.read { db in
            guard let lease = try Self.lease(db, name + "_lease"), lease.expiry > now else { return nil }
            return lease.holder
        }
    }

    /// The lease stored under `key` (`holder expiry`), if any.
    private static func lease(_ db: any IndexConnection, _ key: String) throws -> (holder: String, expiry: Double)? {
        guard let value = try String.fetchOne(db, sql: "SELECT value FROM settings WHERE key = ?", arguments: [key]) else { return nil }
        let parts = value.split(separator: " ")
        guard parts.count == 2, let expiry = Double(parts[1]) else { return nil }
        return (String(parts[0]), expiry)
    }
}
