import Foundation
import GRDB
import Glibc

/// The outcome of storing one input.
public struct PutResult: Sendable {
    /// The blob as it is stored now (for a deduplicated input: as this write encoded it).
    public var blob: WrittenBlob
    /// True when the store already held these bytes and nothing new was written.
    public var deduplicated: Bool
}

extension BlobStore {
    /// Stores a file's bytes and adds the blob to `dataset` under `name`.
    /// Follows DESIGN.md "Writing": temp file + fsync, link without replacing + fsync dir,
    /// one SQLite transaction, and only then returns.
    public func put(fileAt path: String, options: WriteOptions = .init(), dataset: String = BlobStore.defaultDataset,
                    name: String? = nil, cutPoints: [UInt64] = []) throws -> PutResult {
        let source = try PosixFile.openForReading(path)
        source.adviseSequential()
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { chunk.deallocate() }
        return try put(options: options, dataset: dataset, name: name, cutPoints: cutPoints) { (writer) throws in
            while true {
                let count = try source.read(into: chunk)
                if count == 0 { break }
                try writer.write(UnsafeRawBufferPointer(rebasing: chunk[0..<count]))
            }
        }
    }

    /// Stores bytes held in memory.
    public func put(bytes: [UInt8], options: WriteOptions = .init(), dataset: String = BlobStore.defaultDataset,
                    name: String? = nil, cutPoints: [UInt64] = []) throws -> PutResult {
        try put(options: options, dataset: dataset, name: name, cutPoints: cutPoints) { (writer) throws in
            try bytes.withUnsafeBytes { (buffer) throws in try writer.write(buffer) }
        }
    }

    func put(options: WriteOptions, dataset: String, name: String?, cutPoints: [UInt64],
             feed: (BlobWriter) throws -> Void) throws -> PutResult {
        guard try datasetExists(dataset) else {
            throw StoreError.invalidArgument("dataset '\(dataset)' does not exist (create it with `cairn dataset create`)")
        }
        let token = String(UInt64.random(in: 0...UInt64.max), radix: 16) + "-" + String(getpid())
        let partialPath = "\(tmpRoot)/\(token).partial"
        var written: WrittenBlob
        var readyPath = partialPath
        do {
            let writer = try BlobWriter(tempPath: partialPath, options: options,
                                        frameSize: options.frameSize ?? frameSize, cutPoints: cutPoints)
            try feed(writer)
            written = try writer.finish()
            // Renaming keeps the inode (and the writer's lock); the name tells recovery the digest.
            readyPath = "\(tmpRoot)/\(written.digest.hex).\(token).ready"
            guard rename(partialPath, readyPath) == 0 else {
                throw StoreError.io(op: "rename", path: partialPath, errno: errno)
            }
            defer { FileSystem.remove(readyPath) }
            let deduplicated: Bool
            do {
                deduplicated = try link(written, from: readyPath, dataset: dataset, name: name)
            } catch {
                // The commit failed (disk full, say): leave no blob that the index does not know.
                try? discardUncommitted(written.digest, tempPath: readyPath)
                throw error
            }
            // The lock on the temp file is held until `writer` goes away, after the commit.
            withExtendedLifetime(writer) {}
            return PutResult(blob: written, deduplicated: deduplicated)
        } catch {
            FileSystem.remove(partialPath)
            FileSystem.remove(partialPath + ".raw")
            throw error
        }
    }

    /// Links the finished temp file into place and commits its rows; returns true on a dedup hit.
    private func link(_ blob: WrittenBlob, from readyPath: String, dataset: String, name: String?) throws -> Bool {
        let directory = directory(of: blob.digest)
        let blobPath = path(of: blob.digest)
        try ensureDirectory(directory)
        let linked: Bool
        if Glibc.link(readyPath, blobPath) == 0 {
            linked = true
            try FileSystem.fsyncDirectory(directory)
        } else if errno == EEXIST {
            linked = false
        } else {
            if errno == ENOSPC { throw StoreError.diskFull(path: blobPath) }
            throw StoreError.io(op: "link", path: blobPath, errno: errno)
        }
        let now = Date()
        return try index.write { db in
            let existing = try StoreIndex.blob(db, blob.digest)
            var deduplicated = false
            if !linked {
                if let existing, existing.state == .ok, FileSystem.exists(blobPath) {
                    deduplicated = true
                } else {
                    // No committed row, or a damaged or missing file: ours replaces it atomically.
                    guard rename(readyPath, blobPath) == 0 else {
                        throw StoreError.io(op: "rename", path: blobPath, errno: errno)
                    }
                    try FileSystem.fsyncDirectory(directory)
                }
            }
            if !deduplicated {
                try StoreIndex.upsertBlob(db, blob, now: now)
            }
            try db.execute(sql: """
                INSERT OR IGNORE INTO dataset_blobs(dataset_id, digest, name, added_at) VALUES (?, ?, ?, ?)
                """, arguments: [dataset, blob.digest.hex, name, now.timeIntervalSince1970])
            return deduplicated
        }
    }

    /// Creates `blobs/sha256/xx/yy` on first use, fsyncing each parent that gained an entry.
    private func ensureDirectory(_ directory: String) throws {
        if FileSystem.exists(directory) { return }
        let parent = String(directory.dropLast(3))
        if try FileSystem.makeDirectory(parent) { try FileSystem.fsyncDirectory(blobsRoot) }
        if try FileSystem.makeDirectory(directory) { try FileSystem.fsyncDirectory(parent) }
    }
}
