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

/// A blob written to `tmp/` but not yet durable or visible. `BlobStore.commit` makes it both;
/// dropping it uncommitted removes the temp file. Splitting the two lets ingest compress the
/// next file while this one waits for its fsyncs.
public final class StagedBlob: @unchecked Sendable {
    // @unchecked: handed from the thread that wrote it to the one that commits it, never shared.
    public let blob: WrittenBlob
    let file: PosixFile
    let path: String
    let token: String
    let dataset: String
    let name: String?
    /// DICOM attributes to index with the blob, when the input was an instance.
    public var instance: InstanceRecord?

    init(blob: WrittenBlob, file: PosixFile, path: String, token: String, dataset: String, name: String?) {
        self.blob = blob
        self.file = file
        self.path = path
        self.token = token
        self.dataset = dataset
        self.name = name
    }

    deinit { FileSystem.remove(path) }
}

extension BlobStore {
    /// Stores a file's bytes and adds the blob to `dataset` under `name`.
    /// Follows DESIGN.md "Writing": temp file + fsync, link without replacing + fsync dir,
    /// one SQLite transaction, and only then returns.
    public func put(fileAt path: String, options: WriteOptions = .init(), dataset: String = BlobStore.defaultDataset,
                    name: String? = nil, cutPoints: [UInt64] = []) throws -> PutResult {
        try commit(stage(fileAt: path, options: options, dataset: dataset, name: name, cutPoints: cutPoints))
    }

    /// Stores bytes held in memory.
    public func put(bytes: [UInt8], options: WriteOptions = .init(), dataset: String = BlobStore.defaultDataset,
                    name: String? = nil, cutPoints: [UInt64] = []) throws -> PutResult {
        let staged = try stage(options: options, dataset: dataset, name: name, cutPoints: cutPoints) { writer in
            try bytes.withUnsafeBytes { try writer.write($0) }
        }
        return try commit(staged)
    }

    /// Streams a file into `tmp/`: hashed, framed, compressed; not yet fsynced, linked or indexed.
    public func stage(fileAt path: String, options: WriteOptions = .init(), dataset: String = BlobStore.defaultDataset,
                      name: String? = nil, cutPoints: [UInt64] = []) throws -> StagedBlob {
        let source = try PosixFile.openForReading(path)
        source.adviseSequential()
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { chunk.deallocate() }
        return try stage(options: options, dataset: dataset, name: name, cutPoints: cutPoints) { writer in
            while true {
                let count = try source.read(into: chunk)
                if count == 0 { break }
                try writer.write(UnsafeRawBufferPointer(rebasing: chunk[0..<count]))
            }
        }
    }

    func stage(options: WriteOptions, dataset: String, name: String?, cutPoints: [UInt64],
               feed: (BlobWriter) throws -> Void) throws -> StagedBlob {
        guard try datasetExists(dataset) else {
            throw StoreError.invalidArgument("dataset '\(dataset)' does not exist (create it with `cairn dataset create`)")
        }
        let token = String(UInt64.random(in: 0...UInt64.max), radix: 16) + "-" + String(getpid())
        let partialPath = "\(tmpRoot)/\(token).partial"
        do {
            let writer = try BlobWriter(tempPath: partialPath, options: options, frameSize: options.frameSize ?? frameSize,
                                        cutPoints: cutPoints, pool: writeScratchPool)
            try feed(writer)
            let written = try writer.finish()
            return StagedBlob(blob: written, file: writer.file, path: partialPath, token: token, dataset: dataset, name: name)
        } catch {
            FileSystem.remove(partialPath)
            FileSystem.remove(partialPath + ".raw")
            throw error
        }
    }

    /// Makes a staged blob durable and visible: fsync, rename to `<hex>.<token>.ready` (the name
    /// tells recovery the digest), link into place + fsync dir, one transaction. Only then returns.
    public func commit(_ staged: StagedBlob) throws -> PutResult {
        try staged.file.sync()
        let written = staged.blob
        let readyPath = "\(tmpRoot)/\(written.digest.hex).\(staged.token).ready"
        guard rename(staged.path, readyPath) == 0 else {
            throw StoreError.io(op: "rename", path: staged.path, errno: errno)
        }
        defer { FileSystem.remove(readyPath) }
        do {
            let deduplicated = try link(written, from: readyPath, dataset: staged.dataset, name: staged.name,
                                        instance: staged.instance)
            return PutResult(blob: written, deduplicated: deduplicated)
        } catch {
            // The commit failed (disk full, say): leave no blob that the index does not know.
            try? discardUncommitted(written.digest, tempPath: readyPath)
            throw error
        }
    }

    /// Links the finished temp file into place and commits its rows; returns true on a dedup hit.
    private func link(_ blob: WrittenBlob, from readyPath: String, dataset: String, name: String?,
                      instance: InstanceRecord?) throws -> Bool {
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
            if let instance { try Self.insertInstance(db, dataset: dataset, digest: blob.digest, instance) }
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
