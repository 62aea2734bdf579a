import CairnFoundation
import CairnObjectStore
import Crypto
import Foundation
import GRDB
import Synchronization

/// The write, delete and listing paths of a store whose blob files are objects in an S3 bucket.
///
/// Rows decide, and a row never points at a missing object:
/// - A writer uploads outside the index's write lock (the transfer must not hold every other
///   writer up), then, under the lock, HEADs what it is about to commit: the object must be there
///   and be its own (size and MD5), else it uploads again before the row goes in.
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
                // Under the lock: what each leader may commit, after a HEAD where the row alone cannot tell.
                var toCheck: [Int] = []
                var rowHeld = Set<Int>()
                for i in leaders {
                    guard case .success(let object)? = phaseOne[i] else { continue }
                    let row = try StoreIndex.blob(db, batch[i].blob.digest)
                    if row?.state == .ok { rowHeld.insert(i) }
                    if row?.state != .ok || object.uploaded { toCheck.append(i) }
                }
                let checked = Mutex<[Int: Result<Bool, Error>]>([:])
                let checks = toCheck, held = rowHeld
                WorkerPool.forEach(count: checks.count, jobs: Self.parallelUploads) { k in
                    let i = checks[k]
                    guard case .success(let object)? = phaseOne[i] else { return }
                    let outcome = Result { try self.settle(batch[i], object, rowHeld: held.contains(i), client: client) }
                    checked.withLock { $0[i] = outcome }
                }
                let settled = checked.withLock { $0 }
                for (i, staged) in batch.enumerated() {
                    let leader = leaderOf[staged.blob.digest] ?? i
                    if case .failure(let error)? = phaseOne[leader] { results[i] = .failure(error); continue }
                    if case .failure(let error)? = settled[leader] { results[i] = .failure(error); continue }
                    // Ours goes in when the object under the key is ours; else the row there describes it.
                    let writesRow = i == leader && (settled[leader].flatMap { try? $0.get() } ?? false)
                    do {
                        try db.inSavepoint {
                            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM datasets WHERE id = ?", arguments: [staged.dataset]) ?? false else {
                                throw StoreError.invalidArgument("dataset '\(staged.dataset)' does not exist (create it with `cairn dataset create`)")
                            }
                            if writesRow { try StoreIndex.upsertBlob(db, staged.blob, now: now) }
                            try db.execute(sql: """
                                INSERT OR IGNORE INTO dataset_blobs(dataset_id, digest, name, added_at) VALUES (?, ?, ?, ?)
                                """, arguments: [staged.dataset, staged.blob.digest.hex, staged.name, now.timeIntervalSince1970])
                            if let instance = staged.instance {
                                try Self.insertInstance(db, dataset: staged.dataset, digest: staged.blob.digest, instance)
                            }
                            results[i] = .success(PutResult(blob: staged.blob, deduplicated: !writesRow))
                            return .commit
                        }
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
    /// already holds the digest or the bucket holds these very bytes (an orphan, or a concurrent writer).
    private func prepare(_ staged: StagedBlob, client: S3Client) throws -> PreparedObject {
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
            try upload(staged, object, client: client)
        } catch {
            throw StoreError.objectStore(error)
        }
        object.uploaded = true
        return object
    }

    /// Phase two, under the write lock: true when the object under the key is ours (uploaded
    /// again if it went missing or is not ours and no row holds the digest), so our row goes in;
    /// false when a row holds the digest and the object is the one it describes.
    private func settle(_ staged: StagedBlob, _ object: PreparedObject, rowHeld: Bool, client: S3Client) throws -> Bool {
        do {
            if object.isHeld(by: try client.head(Self.objectKey(of: staged.blob.digest))) { return true }
            if rowHeld { return false }
            try upload(staged, object, client: client)
            return true
        } catch {
            throw StoreError.objectStore(error)
        }
    }

    private func upload(_ staged: StagedBlob, _ object: PreparedObject, client: S3Client) throws(ObjectStoreError) {
        let file: PosixFile
        do { file = try PosixFile.openForReading(staged.path) } catch {
            throw .transport(op: "PUT", bucket: client.bucket, key: Self.objectKey(of: staged.blob.digest), reason: "\(error)")
        }
        try client.put(Self.objectKey(of: staged.blob.digest), descriptor: file.fd, size: object.size,
                       sha256Hex: object.sha256Hex, md5: object.md5)
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
                let digests = page.compactMap { BlobDigest(hex: String($0.key.split(separator: "/").last ?? "")) }
                let known: Set<String> = try index.read { db in
                    Set(try String.fetchAll(db, sql: "SELECT digest FROM blobs WHERE digest IN (\(digests.map { _ in "?" }.joined(separator: ",")))",
                                            arguments: StatementArguments(digests.map(\.hex))))
                }
                for object in page where (object.lastModified ?? Date()) < cutoff {
                    let name = String(object.key.split(separator: "/").last ?? "")
                    if BlobDigest(hex: name) == nil || !known.contains(name) {
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
