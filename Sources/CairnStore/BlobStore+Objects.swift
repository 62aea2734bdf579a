import CairnFoundation
import CairnObjectStore
import Crypto
import Foundation
import CairnIndex
import NIOCore
import Synchronization

/// The write, delete and listing paths of a store whose blob files are objects in an S3 bucket.
///
/// Rows decide, and a row never points at a missing object or at another encoding:
/// - A writer uploads outside the index's write lock (the transfer must not hold every other
///   writer up) with a conditional PUT that never replaces an object. Then, under the lock, it
///   HEADs what it is about to commit: an object that is its own (size and MD5) gets its row; one
///   an intact row describes (its size) stays; anything else is replaced by its own before its
///   row goes in. Only a writer holding the lock ever replaces an object.
/// - gc deletes rows first, commits, then, under the lock, deletes the objects of digests that
///   still have no row (`BlobStore+GC.swift`). A writer's check under the lock is therefore
///   ordered with gc's deletes.
/// - The only orphan possible is an object without a row (a writer that died between upload and
///   commit, or gc between its two steps), which gc removes once older than `orphanGracePeriod`.
extension BlobStore {
    /// Uploads (and checks) at once per commit batch.
    static let parallelUploads = 8

    /// What phase one did for one blob: its stored file's hashes, and whether it uploaded.
    struct PreparedObject: Sendable {
        var size: UInt64
        var md5: [UInt8]
        var sha256Hex: String
        var uploaded: Bool

        func isHeld(by info: ObjectInfo?) -> Bool { info?.size == size && info?.etag == Hex.encode(md5) }
    }

    func commitToObjects(_ batch: [StagedBlob], client: S3Client) -> [Result<PutResult, Error>] {
        var results = [Result<PutResult, Error>?](repeating: nil, count: batch.count)
        // One upload per digest: later copies in the batch are duplicates of the first.
        var leaderOf: [BlobDigest: Int] = [:]
        for (i, staged) in batch.enumerated() where leaderOf[staged.blob.digest] == nil { leaderOf[staged.blob.digest] = i }
        let leaders = leaderOf.values.sorted()
        let prepared = Mutex<[Int: Result<PreparedObject, Error>]>([:])
        WorkerPool.forEach(count: leaders.count, jobs: Self.parallelUploads) { k in
            let i = leaders[k]
            let outcome = Result { try self.prepare(batch[i], client: client) }
            prepared.withLock { $0[i] = outcome }
        }
        let phaseOne = prepared.withLock { $0 }
        let now = Date()
        do {
            try index.write { db in
                // Under the lock, each leader's object is looked at (HEAD): the row may go in only
                // for an object that is there and is ours, or stay when it describes what is there.
                var rowSizes: [Int: UInt64] = [:]
                var toCheck: [Int] = []
                for i in leaders {
                    guard case .success? = phaseOne[i] else { continue }
                    if let row = try StoreIndex.blob(db, batch[i].blob.digest), row.state == .ok { rowSizes[i] = row.storedSize }
                    toCheck.append(i)
                }
                let checked = Mutex<[Int: Result<Settlement, Error>]>([:])
                let checks = toCheck, sizes = rowSizes
                WorkerPool.forEach(count: checks.count, jobs: Self.parallelUploads) { k in
                    let i = checks[k]
                    guard case .success(let object)? = phaseOne[i] else { return }
                    let outcome = Result { try self.settle(batch[i], object, rowStoredSize: sizes[i], client: client) }
                    checked.withLock { $0[i] = outcome }
                }
                let settled = checked.withLock { $0 }
                let datasets = try StoreIndex.existingDatasets(db, of: batch)
                for (i, staged) in batch.enumerated() {
                    let leader = leaderOf[staged.blob.digest] ?? i
                    if case .failure(let error)? = phaseOne[leader] { results[i] = .failure(error); continue }
                    if case .failure(let error)? = settled[leader] { results[i] = .failure(error); continue }
                    // Our row goes in when the object under the key is ours; else the row there describes it.
                    let settlement = settled[leader].flatMap { try? $0.get() }
                    let writesRow = i == leader && settlement != nil && settlement != .theirs
                    let deduplicated = i != leader || (rowSizes[leader] != nil && settlement != .replaced)
                    do {
                        guard datasets.contains(staged.dataset) else {
                            throw StoreError.invalidArgument("dataset '\(staged.dataset)' does not exist (create it with `cairn dataset create`)")
                        }
                        if !writesRow, try StoreIndex.blob(db, staged.blob.digest)?.state != .ok {
                            // A copy whose first in the batch did not commit has no blob to refer to.
                            throw StoreError.index("blob \(staged.blob.digest) was not stored: its first copy in this batch failed")
                        }
                        // All of this copy's rows or none (a savepoint), in one round trip to a server.
                        try db.executeAtomically((writesRow ? [StoreIndex.upsertBlob(staged.blob, now: now)] : [])
                            + [StoreIndex.addToDataset(staged, now: now)]
                            + (staged.instance.map { Self.replaceInstance(dataset: staged.dataset, digest: staged.blob.digest, $0) } ?? []))
                        results[i] = .success(PutResult(blob: staged.blob, deduplicated: deduplicated))
                    } catch {
                        results[i] = .failure(error)
                    }
                }
            }
        } catch {
            // Nothing of this batch committed; objects it uploaded are orphans for gc.
            for i in results.indices { if case .success = results[i] { results[i] = .failure(error) } }
        }
        return results.map { $0 ?? .failure(StoreError.index("not committed")) }
    }

    /// Phase one, without the lock: hashes the staged file, and uploads it unless an intact row
    /// already holds the digest or the bucket holds these very bytes (an orphan, or a concurrent
    /// writer). The PUT is conditional: it never replaces an object, which a committed row may
    /// describe; what to do when one is there is decided under the lock (`settle`).
    private func prepare(_ staged: StagedBlob, client: S3Client) throws -> PreparedObject {
        guard try datasetExists(staged.dataset) else {
            throw StoreError.invalidArgument("dataset '\(staged.dataset)' does not exist (create it with `cairn dataset create`)")
        }
        let (size, sha256, md5) = try Self.hashes(of: try PosixFile.openForReading(staged.path))
        guard size == staged.blob.storedSize else {
            throw StoreError.corruptBlob(staged.blob.digest, path: staged.path,
                                         reason: "staged file holds \(size) bytes, the writer reported \(staged.blob.storedSize)")
        }
        var object = PreparedObject(size: size, md5: md5, sha256Hex: Hex.encode(sha256), uploaded: false)
        if try record(staged.blob.digest)?.state == .ok { return object }
        let key = Self.objectKey(of: staged.blob.digest)
        do {
            if object.isHeld(by: try client.head(key)) { return object }
            object.uploaded = try upload(staged, object, ifAbsent: true, client: client) == .stored
        } catch {
            throw StoreError.objectStore(error)
        }
        return object
    }

    /// What phase two found under the key.
    enum Settlement: Sendable, Equatable {
        /// Our bytes (size and MD5): our row goes in.
        case ours
        /// The object an intact row describes (its size): the row stays.
        case theirs
        /// Neither (no row and another encoding there, or the row's object missing or of
        /// another size): ours was uploaded over it, and our row goes in.
        case replaced
    }

    /// Phase two, under the write lock. Replacing is safe here: no writer commits meanwhile, and
    /// phase-one PUTs never replace.
    private func settle(_ staged: StagedBlob, _ object: PreparedObject, rowStoredSize: UInt64?, client: S3Client) throws -> Settlement {
        do {
            let current = try client.head(Self.objectKey(of: staged.blob.digest), deadline: S3Client.heldLockDeadline)
            if object.isHeld(by: current) { return .ours }
            if let rowStoredSize, let current, current.size == rowStoredSize { return .theirs }
            try upload(staged, object, ifAbsent: false, client: client)
            return .replaced
        } catch {
            throw StoreError.objectStore(error)
        }
    }

    @discardableResult
    private func upload(_ staged: StagedBlob, _ object: PreparedObject, ifAbsent: Bool,
                        client: S3Client) throws(ObjectStoreError) -> S3Client.PutOutcome {
        let file: PosixFile
        do { file = try PosixFile.openForReading(staged.path) } catch {
            throw .transport(op: "PUT", bucket: client.bucket, key: Self.objectKey(of: staged.blob.digest), reason: "\(error)")
        }
        return try client.put(Self.objectKey(of: staged.blob.digest), descriptor: file.fd, size: object.size,
                       sha256Hex: object.sha256Hex, md5: object.md5, ifAbsent: ifAbsent)
    }

    private static func hashes(of file: PosixFile) throws -> (size: UInt64, sha256: [UInt8], md5: [UInt8]) {
        var sha = SHA256(), md5 = Insecure.MD5()
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { chunk.deallocate() }
        var size: UInt64 = 0
        while true {
            let count = try file.read(into: chunk)
            if count == 0 { break }
            let piece = UnsafeRawBufferPointer(rebasing: chunk[0..<count])
            sha.update(bufferPointer: piece)
            md5.update(bufferPointer: piece)
            size += UInt64(count)
        }
        return (size, Array(sha.finalize()), Array(md5.finalize()))
    }

    /// Objects under `blobs/sha256/` with no row, older than `age` (younger ones may be uploads
    /// whose commit is still to come), as `s3://` locations.
    func orphanObjects(olderThan age: TimeInterval, client: S3Client) throws -> [(location: String, key: String, size: UInt64)] {
        let cutoff = Date().addingTimeInterval(-age)
        var orphans: [(String, String, UInt64)] = []
        do {
            try client.list(prefix: "blobs/sha256/") { page in
                let digests = page.compactMap { Self.digest(named: $0.key) }
                // `IN ()` is an error on PostgreSQL: a page with no blob objects has nothing to look up.
                let known: Set<String> = digests.isEmpty ? [] : try index.read { db in
                    Set(try String.fetchAll(db, sql: "SELECT digest FROM blobs WHERE digest IN (\(digests.map { _ in "?" }.joined(separator: ",")))",
                                            arguments: IndexArguments(digests.map(\.hex))))
                }
                for object in page where (object.lastModified ?? Date()) < cutoff {
                    if Self.digest(named: object.key).map({ known.contains($0.hex) }) != true {
                        orphans.append(("s3://\(client.bucket)/\(object.key)", object.key, object.size))
                    }
                }
            }
        } catch let error as ObjectStoreError {
            throw StoreError.objectStore(error)
        }
        return orphans
    }
}
