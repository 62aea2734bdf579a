import CairnObjectStore
import Foundation
import GRDB
import Glibc

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
    /// Runs under a lease in the index so two collectors never sweep at once. Each batch deletes
    /// files and rows inside one write transaction, which serialises it with writers: a writer that
    /// deduplicated against a blob checks the file still exists inside its own commit.
    public func collectGarbage(dryRun: Bool) throws -> GCReport {
        let holder = "\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        guard try takeLease("gc", holder: holder, for: Self.gcLeaseSeconds) else {
            throw StoreError.invalidArgument("another gc holds the lease; try again later")
        }
        defer { try? releaseLease("gc", holder: holder) }
        var report = GCReport()
        var firstFailure: Error?
        let candidates: [BlobRecord] = try index.read { db in
            try Row.fetchAll(db, sql: """
                SELECT * FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM dataset_blobs d WHERE d.digest = b.digest)
                """).map(BlobRecord.init)
        }
        for batch in stride(from: 0, to: candidates.count, by: 500).map({ Array(candidates[$0..<min($0 + 500, candidates.count)]) }) {
            try index.write { db in
                for blob in batch {
                    let stillUnreferenced = try Bool.fetchOne(db, sql: "SELECT 1 FROM dataset_blobs WHERE digest = ?",
                                                              arguments: [blob.digest.hex]) == nil
                    guard stillUnreferenced else { continue }
                    if !dryRun, let objects {
                        // A delete the bucket refuses keeps the row (and the blob): retried by the next gc.
                        do { try removeObject(blob.digest, client: objects) } catch {
                            firstFailure = firstFailure ?? error
                            continue
                        }
                    }
                    report.unreferenced.append(blob.digest)
                    report.bytesFreed += blob.storedSize
                    if dryRun { continue }
                    if objects == nil { FileSystem.remove(path(of: blob.digest)) }
                    try db.execute(sql: "DELETE FROM blobs WHERE digest = ?", arguments: [blob.digest.hex])
                }
            }
            guard try takeLease("gc", holder: holder, for: Self.gcLeaseSeconds) else {
                throw StoreError.index("gc lost its lease to another collector; stopped")
            }
        }
        if let firstFailure { throw firstFailure }
        if let objects {
            let orphans = try orphanObjects(olderThan: Self.orphanGracePeriod, client: objects)
            report.orphanFiles = orphans.map(\.location)
            if !dryRun {
                // Inside a write transaction, and only while still row-less: a writer adopting the
                // same bytes (its HEAD found this object) commits its row in one of those.
                try index.write { db in
                    for orphan in orphans {
                        let name = String(orphan.key.split(separator: "/").last ?? "")
                        if let digest = BlobDigest(hex: name), try StoreIndex.blob(db, digest) != nil { continue }
                        do { try objects.delete(orphan.key) } catch let error as ObjectStoreError { throw StoreError.objectStore(error) }
                        report.bytesFreed += orphan.size
                    }
                }
            }
            return report
        }
        report.orphanFiles = try orphanFiles(olderThan: Self.orphanGracePeriod)
        if !dryRun {
            // As for objects: only while no writer has committed a row for the name since.
            try index.write { db in
                for orphan in report.orphanFiles {
                    let name = String(orphan.split(separator: "/").last ?? "")
                    if let digest = BlobDigest(hex: name), try StoreIndex.blob(db, digest) != nil { continue }
                    report.bytesFreed += FileSystem.fileSize(orphan) ?? 0
                    FileSystem.remove(orphan)
                }
            }
        }
        return report
    }
}
