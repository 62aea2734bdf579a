import CairnBlobs
import Foundation
import CairnIndex
import Glibc

/// What `rewrite` did with one blob.
public enum RewriteOutcome: Sendable {
    /// The blob file was replaced; `before` is the stored size it had.
    case rewritten(before: UInt64, after: WrittenBlob)
    /// Under the profile the blob would be stored raw (compression does not pay): the file stays
    /// as it was and its row records the profile, so a resumed run skips it.
    case keptAsIs
    /// The blob went away (gc, erasure) or was damaged while it was being rewritten.
    case gone
}

extension BlobStore {
    /// Framed blobs in `dataset` (nil: all) not written under `profile`, in digest order after
    /// `after`. Raw blobs are left alone: a reader that opened a raw blob's row must never find a
    /// framed file, whose bytes it would serve unchecked.
    public func blobsToRecompress(profile: StorageProfile, dataset: String?, after: String, limit: Int) throws -> [BlobRecord] {
        let (condition, arguments) = Self.toRecompress(profile: profile, dataset: dataset)
        return try index.read { db in
            try IndexRow.fetchAll(db, sql: "SELECT * FROM blobs WHERE \(condition) AND digest > ? ORDER BY digest LIMIT ?",
                             arguments: arguments + [after, limit]).map(BlobRecord.init)
        }
    }

    /// How many blobs `blobsToRecompress` would go through, for progress.
    public func countToRecompress(profile: StorageProfile, dataset: String?) throws -> Int {
        try refuseRecompressOnObjects()
        let (condition, arguments) = Self.toRecompress(profile: profile, dataset: dataset)
        return try index.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM blobs WHERE \(condition)", arguments: arguments) ?? 0 }
    }

    /// The blobs a recompress goes through: framed, intact, not under `profile`, in `dataset` if given.
    private static func toRecompress(profile: StorageProfile, dataset: String?) -> (String, IndexArguments) {
        let condition = "codec != 'raw' AND state = 'ok' AND (profile IS NULL OR profile != ?)"
        guard let dataset else { return (condition, [profile.rawValue]) }
        return (condition + " AND digest IN (SELECT digest FROM dataset_blobs WHERE dataset_id = ?)", [profile.rawValue, dataset])
    }

    /// Rewrites one framed blob under `profile` from `source` (a reader of it), in place and crash-safe: its original bytes are
    /// read through their frame checksums into a new temp file, which must hash to the same digest,
    /// is made durable, and replaces the blob file by rename inside the transaction that updates
    /// its row. A crash before the rename leaves the old file; after it, the new file under the old
    /// row, which reads the same bytes (frames decode by their own magic) and which a resumed run
    /// rewrites again, correcting the row.
    public func rewrite(_ record: BlobRecord, from source: BlobReader, profile: StorageProfile, cutPoints: [UInt64],
                        pixels: PixelRegion?) throws -> RewriteOutcome {
        try refuseRecompressOnObjects()
        let staged = try stage(options: WriteOptions(profile: profile), dataset: "", name: nil, cutPoints: cutPoints,
                               pixels: pixels) { writer in
            try source.read(0..<source.size) { try writer.write($0) }
        }
        guard staged.blob.digest == record.digest else {
            throw StoreError.digestMismatch(expected: record.digest, actual: staged.blob.digest, path: path(of: record.digest))
        }
        if staged.blob.codec == .raw {
            try index.write { db in
                try db.execute(sql: "UPDATE blobs SET profile = ? WHERE digest = ?", arguments: [profile.rawValue, record.digest.hex])
            }
            return .keptAsIs
        }
        try staged.file.sync()
        // What the new file decodes to, not only what was fed to the writer, must hash to the
        // digest before it may replace the only copy.
        try BlobReader(path: staged.path, digest: record.digest, codec: staged.blob.codec).checkDigest()
        let blobPath = path(of: record.digest)
        return try index.write { db in
            guard let current = try StoreIndex.blob(db, record.digest), current.state == .ok, current.codec != .raw,
                  FileSystem.exists(blobPath) else { return .gone }
            // The row first: after the rename only the commit itself can fail.
            try db.execute(sql: "UPDATE blobs SET codec = ?, stored_size = ?, frames = ?, profile = ? WHERE digest = ?",
                           arguments: [staged.blob.codec.rawValue, Int64(staged.blob.storedSize), staged.blob.frames,
                                       profile.rawValue, record.digest.hex])
            guard rename(staged.path, blobPath) == 0 else { throw StoreError.io(op: "rename", path: blobPath, errno: errno) }
            try FileSystem.fsyncDirectory(directory(of: record.digest))
            return .rewritten(before: current.storedSize, after: staged.blob)
        }
    }

    /// Replacing an object in place under readers that hold its seek table is not safe the way a
    /// rename is, so recompress works on file blob stores only (for now).
    private func refuseRecompressOnObjects() throws {
        guard objects == nil else {
            throw StoreError.invalidArgument("recompress rewrites blob files in place; this store keeps its blobs in \(blobLocation), where it is not supported yet")
        }
    }
}
