import Crypto
import Foundation
import CairnIndex

/// What `verify` found.
public struct VerifyReport: Sendable {
    public struct Problem: Sendable {
        public var digest: BlobDigest
        public var state: BlobRecord.State
        public var detail: String
    }

    public var checked = 0
    public var bytesChecked: UInt64 = 0
    public var problems: [Problem] = []
    /// Blob files on disk with no index row (a crash between link and commit, or foreign files).
    public var orphanFiles: [String] = []
    public var isClean: Bool { problems.isEmpty }

    public init() {}
}

extension BlobStore {
    /// Digests to check: all blobs, or a random sample of about `percent` % of them.
    public func digestsToVerify(samplePercent: Double?) throws -> [BlobDigest] {
        try index.read { db in
            let sql: String
            if let percent = samplePercent, percent < 100 {
                let fraction = max(0, min(100, percent)) / 100
                switch db.dialect {
                // SQLite's random() is a signed 64-bit integer, PostgreSQL's a double in [0, 1).
                case .sqlite: sql = "SELECT digest FROM blobs WHERE abs(random()) < \(Int64(fraction * Double(Int64.max)))"
                case .postgres: sql = "SELECT digest FROM blobs WHERE random() < \(fraction)"
                }
            } else {
                sql = "SELECT digest FROM blobs"
            }
            return try String.fetchAll(db, sql: sql).compactMap(BlobDigest.init(hex:))
        }
    }

    /// Reads one blob end to end (frame checksums), re-hashes it, and records the result in the index.
    /// Returns nil when the blob is intact.
    public func verifyBlob(_ digest: BlobDigest) throws -> VerifyReport.Problem? {
        guard let record = try record(digest) else { throw StoreError.notFound(digest) }
        let problem: VerifyReport.Problem?
        do {
            let reader = try makeReader(digest, codec: record.codec, storedSize: record.storedSize, shared: false)
            guard reader.size == record.size else {
                throw StoreError.corruptBlob(digest, path: reader.path,
                                             reason: "holds \(reader.size) bytes, the index says \(record.size)")
            }
            try reader.checkDigest()
            problem = nil
        } catch let error as StoreError {
            if case .missing = error {
                problem = .init(digest: digest, state: .missing, detail: error.description)
            } else if case .io = error {
                throw error
            } else if case .objectStore = error {
                // The bucket unreachable or refusing says nothing about the blob: not marked, reported.
                throw error
            } else {
                problem = .init(digest: digest, state: .corrupt, detail: error.description)
            }
        }
        let state = problem?.state ?? .ok
        try index.write { db in try StoreIndex.setState(db, digest, state, verifiedAt: Date()) }
        return problem
    }

    /// Blob files on disk that have no index row and are older than `olderThan` (in-flight writes are younger).
    public func orphanFiles(olderThan age: TimeInterval) throws -> [String] {
        if let objects { return try orphanObjects(olderThan: age, client: objects).map(\.location) }
        let cutoff = Date().addingTimeInterval(-age)
        var orphans: [String] = []
        for first in try FileSystem.list(blobsRoot).sorted() {
            let firstPath = blobsRoot + "/" + first
            for second in (try? FileSystem.list(firstPath))?.sorted() ?? [] {
                let secondPath = firstPath + "/" + second
                let names = (try? FileSystem.list(secondPath)) ?? []
                let known: Set<String> = try index.read { db in
                    Set(try String.fetchAll(db, sql: "SELECT digest FROM blobs WHERE digest >= ? AND digest < ?",
                                            arguments: [first + second, first + second + "g"]))
                }
                for name in names where !known.contains(name) {
                    let path = secondPath + "/" + name
                    let modified = (try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date) ?? Date()
                    if modified < cutoff { orphans.append(path) }
                }
            }
        }
        return orphans
    }
}
