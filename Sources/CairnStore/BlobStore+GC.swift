import CairnObjectStore
import Foundation
import CairnIndex
import NIOCore
import Glibc
import Synchronization

/// What `gc` removed (or, dry, would remove).
public struct GCReport: Sendable {
    public var unreferenced: [BlobDigest] = []
    public var bytesFreed: UInt64 = 0
    public var orphanFiles: [String] = []
}

extension BlobStore {
    /// Files younger than this are never treated as orphans: they may be in-flight writes.
    public static let orphanGracePeriod: TimeInterval = 3600
    static let gcLeaseSeconds: TimeInterval = 600

    /// Mark and sweep. Roots are the blobs that some dataset references; everything else goes.
    /// Runs under a lease in the index so two collectors never sweep at once. Each batch first
    /// deletes rows (committed), then, inside a write transaction, the files or objects of digests
    /// that still have no row: a writer storing the same bytes meanwhile committed a row (and its
    /// own file or object) in between, or checks, under the same lock, that its object is there.
    /// So a row never names a missing blob; a crash between the two steps leaves only orphans.
    public func collectGarbage(dryRun: Bool) throws -> GCReport {
        let holder = "\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        guard try takeLease("gc", holder: holder, for: Self.gcLeaseSeconds) else {
            throw StoreError.invalidArgument("another gc holds the lease; try again later")
        }
        defer { try? releaseLease("gc", holder: holder) }
        var report = GCReport()
        let candidates: [BlobRecord] = try index.read { db in
            try IndexRow.fetchAll(db, sql: """
                SELECT * FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM dataset_blobs d WHERE d.digest = b.digest)
                    AND NOT EXISTS (SELECT 1 FROM quarantine q WHERE q.digest = b.digest)
                """).map(BlobRecord.init)
        }
        var failures: [String] = []
        for batch in Self.batches(candidates, of: 500) {
            let removed: [BlobRecord] = try index.write { db in
                var removed: [BlobRecord] = []
                for blob in batch {
                    // A quarantined blob waits for review: it is held, not garbage.
                    let stillUnreferenced = try Bool.fetchOne(db, sql: """
                        SELECT 1 FROM dataset_blobs WHERE digest = ? UNION ALL SELECT 1 FROM quarantine WHERE digest = ?
                        """, arguments: [blob.digest.hex, blob.digest.hex]) == nil
                    guard stillUnreferenced else { continue }
                    removed.append(blob)
                    if !dryRun { try db.execute(sql: "DELETE FROM blobs WHERE digest = ?", arguments: [blob.digest.hex]) }
                }
                return removed
            }
            report.unreferenced += removed.map(\.digest)
            report.bytesFreed += removed.reduce(0) { $0 + $1.storedSize }
            if !dryRun {
                failures += try removeRowless(removed.map { ($0.digest, location(of: $0.digest)) })
            }
            guard try takeLease("gc", holder: holder, for: Self.gcLeaseSeconds) else {
                throw StoreError.index("gc lost its lease to another collector; stopped")
            }
        }
        let orphans: [(digest: BlobDigest?, location: String, size: UInt64)]
        if let objects {
            orphans = try orphanObjects(olderThan: Self.orphanGracePeriod, client: objects)
                .map { (Self.digest(named: $0.key), $0.location, $0.size) }
        } else {
            orphans = try orphanFiles(olderThan: Self.orphanGracePeriod)
                .map { (Self.digest(named: $0), $0, FileSystem.fileSize($0) ?? 0) }
        }
        report.orphanFiles = orphans.map(\.location)
        if !dryRun {
            for batch in Self.batches(orphans, of: 500) {
                failures += try removeRowless(batch.map { ($0.digest, $0.location) })
                report.bytesFreed += batch.reduce(0) { $0 + $1.size }
            }
        }
        if !failures.isEmpty {
            throw StoreError.index("gc removed the rows but could not remove \(failures.count) blob(s), left as orphans for the next gc: "
                                   + failures.prefix(3).joined(separator: "; "))
        }
        return report
    }

    /// Removes the files or objects at `locations` whose digest has no row, inside one write
    /// transaction (so ordered with writers' commits and checks). Returns what failed to go.
    private func removeRowless(_ locations: [(digest: BlobDigest?, location: String)]) throws -> [String] {
        if locations.isEmpty { return [] }
        return try index.write { db in
            var rowless: [String] = []
            for (digest, location) in locations {
                if let digest, try StoreIndex.blob(db, digest) != nil { continue }
                rowless.append(location)
            }
            guard let objects else {
                rowless.forEach(FileSystem.remove)
                return []
            }
            let prefix = "s3://\(objects.bucket)/"
            let failed = Mutex<[String]>([])
            let keys = rowless.map { String($0.dropFirst(prefix.count)) }
            WorkerPool.forEach(count: keys.count, jobs: Self.parallelUploads) { i in
                do { try objects.delete(keys[i], deadline: S3Client.heldLockDeadline) } catch {
                    failed.withLock { $0.append("\(error)") }
                }
            }
            return failed.withLock { $0 }
        }
    }

    static func batches<T>(_ items: [T], of size: Int) -> [ArraySlice<T>] {
        stride(from: 0, to: items.count, by: size).map { items[$0..<min($0 + size, items.count)] }
    }
}
