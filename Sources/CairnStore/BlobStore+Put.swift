import CairnBlobs
import Foundation
import CairnIndex
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
                    name: String? = nil, cutPoints: [UInt64] = [], pixels: PixelRegion? = nil) throws -> PutResult {
        try commit(stage(fileAt: path, options: options, dataset: dataset, name: name, cutPoints: cutPoints, pixels: pixels))
    }

    /// Stores bytes held in memory.
    public func put(bytes: [UInt8], options: WriteOptions = .init(), dataset: String = BlobStore.defaultDataset,
                    name: String? = nil, cutPoints: [UInt64] = [], pixels: PixelRegion? = nil) throws -> PutResult {
        let staged = try stage(options: options, dataset: dataset, name: name, cutPoints: cutPoints, pixels: pixels) { writer in
            try bytes.withUnsafeBytes { try writer.write($0) }
        }
        return try commit(staged)
    }

    /// Streams a file into `tmp/`: hashed, framed, compressed; not yet fsynced, linked or indexed.
    /// `cutPoints` start new frames (DICOM: Pixel Data and each image frame); frames inside `pixels`
    /// go through the pixel stage of the options' profile.
    public func stage(fileAt path: String, options: WriteOptions = .init(), dataset: String = BlobStore.defaultDataset,
                      name: String? = nil, cutPoints: [UInt64] = [], pixels: PixelRegion? = nil) throws -> StagedBlob {
        let source = try PosixFile.openForReading(path)
        source.adviseSequential()
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { chunk.deallocate() }
        return try stage(options: options, dataset: dataset, name: name, cutPoints: cutPoints, pixels: pixels) { writer in
            while true {
                let count = try source.read(into: chunk)
                if count == 0 { break }
                try writer.write(UnsafeRawBufferPointer(rebasing: chunk[0..<count]))
            }
        }
    }

    func stage(options: WriteOptions, dataset: String, name: String?, cutPoints: [UInt64], pixels: PixelRegion? = nil,
               feed: (BlobWriter) throws -> Void) throws -> StagedBlob {
        let token = String(UInt64.random(in: 0...UInt64.max), radix: 16) + "-" + String(getpid())
        let partialPath = "\(tmpRoot)/\(token).partial"
        do {
            let writer = try BlobWriter(tempPath: partialPath, options: options, frameSize: options.frameSize(store: frameSize),
                                        cutPoints: cutPoints, pixels: pixels, pool: writeScratchPool)
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
        try commit([staged])[0].get()
    }

    /// Group commit: the same steps for many staged blobs, with two `syncfs` calls and one
    /// transaction for the whole batch instead of three fsyncs per blob. The order still holds
    /// for every blob: its bytes are durable before its link, its link before its index rows.
    /// A blob that fails fails alone; the others commit.
    public func commit(_ batch: [StagedBlob]) -> [Result<PutResult, Error>] {
        if let objects { return commitToObjects(batch, client: objects) }
        var results = [Result<PutResult, Error>?](repeating: nil, count: batch.count)
        var linked: [Int] = []
        var readyPaths: [Int: String] = [:]
        defer { for path in readyPaths.values { FileSystem.remove(path) } }
        let useSyncfs = batch.count > 1
        if useSyncfs {
            // The filesystems that hold the temp files' bytes and the links: the data directory's
            // own, unless `tmp/` and `blobs/` are links to another (CephFS, see README).
            do { try FileSystem.syncFilesystem(tmpRoot) } catch {
                return batch.map { _ in .failure(error) }
            }
        }
        for (i, staged) in batch.enumerated() {
            do {
                if !useSyncfs { try staged.file.sync() }
                let readyPath = "\(tmpRoot)/\(staged.blob.digest.hex).\(staged.token).ready"
                guard rename(staged.path, readyPath) == 0 else {
                    throw StoreError.io(op: "rename", path: staged.path, errno: errno)
                }
                readyPaths[i] = readyPath
                try linkIntoPlace(staged.blob.digest, from: readyPath, syncDirectory: !useSyncfs)
                linked.append(i)
            } catch {
                results[i] = .failure(error)
            }
        }
        if useSyncfs && !linked.isEmpty {
            do { try FileSystem.syncFilesystem(blobsRoot) } catch {
                for i in linked { results[i] = .failure(error) }
                linked.removeAll()
            }
        }
        let now = Date()
        do {
            try index.write { db in
                let datasets = try StoreIndex.existingDatasets(db, of: linked.map { batch[$0] })
                for i in linked {
                    let staged = batch[i]
                    // Each file's rows go in atomically (a savepoint): one that fails leaves the others.
                    do {
                        let deduplicated = try record(staged, readyPath: readyPaths[i]!, db: db, now: now, datasets: datasets)
                        results[i] = .success(PutResult(blob: staged.blob, deduplicated: deduplicated))
                    } catch {
                        results[i] = .failure(error)
                    }
                }
            }
        } catch {
            for i in linked { results[i] = .failure(error) }
        }
        for (i, result) in results.enumerated() {
            // A blob whose commit failed (disk full, say) must not stay linked without an index row.
            if case .failure = result, let readyPath = readyPaths[i] {
                try? discardUncommitted(batch[i].blob.digest, tempPath: readyPath)
            }
        }
        return results.map { $0 ?? .failure(StoreError.index("not committed")) }
    }

    /// Hard-links the ready temp file to the blob path; a blob file already there (EEXIST) is left
    /// for `record` to judge inside the transaction.
    private func linkIntoPlace(_ digest: BlobDigest, from readyPath: String, syncDirectory: Bool) throws {
        let directory = directory(of: digest)
        let blobPath = path(of: digest)
        try ensureDirectory(directory)
        if Glibc.link(readyPath, blobPath) == 0 {
            if syncDirectory { try FileSystem.fsyncDirectory(directory) }
            return
        }
        if errno == EEXIST { return }
        if errno == ENOSPC { throw StoreError.diskFull(path: blobPath) }
        throw StoreError.io(op: "link", path: blobPath, errno: errno)
    }

    /// Index rows for one linked blob; returns true on a dedup hit. What decides is the file at the
    /// blob path *inside* the transaction: a concurrent writer of the same bytes may have replaced
    /// ours since we linked it, so the row must describe whichever file is there.
    /// `datasets`: those of the batch that exist, looked up once inside the commit rather than with
    /// a read of its own per staged file.
    private func record(_ staged: StagedBlob, readyPath: String, db: any IndexConnection, now: Date,
                        datasets: Set<String>) throws -> Bool {
        guard datasets.contains(staged.dataset) else {
            throw StoreError.invalidArgument("dataset '\(staged.dataset)' does not exist (create it with `cairn dataset create`)")
        }
        let blob = staged.blob
        let blobPath = path(of: blob.digest)
        var deduplicated = false
        if !FileSystem.sameFile(blobPath, readyPath) {
            if let existing = try StoreIndex.blob(db, blob.digest), existing.state == .ok, FileSystem.exists(blobPath) {
                deduplicated = true
            } else {
                // No committed row, or a damaged or missing file: ours replaces it atomically.
                guard rename(readyPath, blobPath) == 0 else {
                    throw StoreError.io(op: "rename", path: blobPath, errno: errno)
                }
                try FileSystem.fsyncDirectory(directory(of: blob.digest))
            }
        }
        // The rows go in one atomic batch: one round trip to a PostgreSQL index, savepoint included.
        try db.executeAtomically((deduplicated ? [] : [StoreIndex.upsertBlob(blob, now: now)]) + [StoreIndex.addToDataset(staged, now: now)]
            + (staged.instance.map { Self.replaceInstance(dataset: staged.dataset, digest: blob.digest, $0) } ?? []))
        return deduplicated
    }

    /// Creates `blobs/sha256/xx/yy` on first use, fsyncing each parent that gained an entry.
    private func ensureDirectory(_ directory: String) throws {
        if FileSystem.exists(directory) { return }
        let parent = String(directory.dropLast(3))
        if try FileSystem.makeDirectory(parent) { try FileSystem.fsyncDirectory(blobsRoot) }
        if try FileSystem.makeDirectory(directory) { try FileSystem.fsyncDirectory(parent) }
    }
}
