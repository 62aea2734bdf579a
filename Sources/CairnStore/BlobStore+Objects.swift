import CairnFoundation
import CairnObjectStore
import Crypto
import Foundation
import GRDB
import Synchronization

/// The write, delete and listing paths of a store whose blob files are objects in an S3 bucket.
/// The order that keeps it consistent: an object is uploaded and verified before its row is
/// committed, and rows decide. Uploads and gc's deletes both happen inside the index's write
/// transaction, which serialises them: a writer that finds no row uploads its own object, and a
/// collector removes an object only together with its row. So a row never points at a missing
/// object, and the only orphan possible is an object without a row (a writer that died between
/// upload and commit), which gc removes once it is older than `orphanGracePeriod`.
extension BlobStore {
    /// Uploads at once per commit batch.
    static let parallelUploads = 8

    func commitToObjects(_ batch: [StagedBlob], client: S3Client) -> [Result<PutResult, Error>] {
        var results = [Result<PutResult, Error>?](repeating: nil, count: batch.count)
        let now = Date()
        do {
            try index.write { db in
                var uploads: [Int] = []
                for (i, staged) in batch.enumerated() {
                    guard try Bool.fetchOne(db, sql: "SELECT 1 FROM datasets WHERE id = ?", arguments: [staged.dataset]) ?? false else {
                        results[i] = .failure(StoreError.invalidArgument(
                            "dataset '\(staged.dataset)' does not exist (create it with `cairn dataset create`)"))
                        continue
                    }
                    let existing = try StoreIndex.blob(db, staged.blob.digest)
                    if existing?.state != .ok { uploads.append(i) }
                }
                let failures = Self.concurrentMap(uploads, width: Self.parallelUploads) { (i: Int) -> (any Error)? in
                    do { try self.upload(batch[i], client: client); return nil } catch { return error }
                }
                for (i, failure) in zip(uploads, failures) { if let failure { results[i] = .failure(failure) } }
                let uploaded = Set(uploads)
                for (i, staged) in batch.enumerated() {
                    if results[i] != nil { continue }
                    do {
                        try db.inSavepoint {
                            let deduplicated = !uploaded.contains(i)
                            if !deduplicated { try StoreIndex.upsertBlob(db, staged.blob, now: now) }
                            try db.execute(sql: """
                                INSERT OR IGNORE INTO dataset_blobs(dataset_id, digest, name, added_at) VALUES (?, ?, ?, ?)
                                """, arguments: [staged.dataset, staged.blob.digest.hex, staged.name, now.timeIntervalSince1970])
                            if let instance = staged.instance {
                                try Self.insertInstance(db, dataset: staged.dataset, digest: staged.blob.digest, instance)
                            }
                            results[i] = .success(PutResult(blob: staged.blob, deduplicated: deduplicated))
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

    /// PUTs one staged blob file unless the bucket already holds the same bytes (same size and
    /// MD5 ETag: an orphan of an earlier writer, or a concurrent one). The server checks the
    /// signed SHA-256 of the body; the ETag it answers must be our MD5.
    private func upload(_ staged: StagedBlob, client: S3Client) throws {
        let key = Self.objectKey(of: staged.blob.digest)
        let file = try PosixFile.openForReading(staged.path)
        let (size, sha256, md5) = try Self.hashes(of: file)
        guard size == staged.blob.storedSize else {
            throw StoreError.corruptBlob(staged.blob.digest, path: staged.path,
                                         reason: "staged file holds \(size) bytes, the writer reported \(staged.blob.storedSize)")
        }
        do {
            if let existing = try client.head(key), existing.size == size, existing.etag == Hex.encode(md5) { return }
            try client.put(key, descriptor: file.fd, size: size, sha256Hex: Hex.encode(sha256), md5: md5)
        } catch {
            throw StoreError.objectStore(error)
        }
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

    /// Removes a blob's object (gc, inside its write transaction). Failing throws, so the row stays.
    func removeObject(_ digest: BlobDigest, client: S3Client) throws {
        do { try client.delete(Self.objectKey(of: digest)) } catch { throw StoreError.objectStore(error) }
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

    /// Runs `body` over `items` on up to `width` threads; results in the order of `items`.
    static func concurrentMap<T: Sendable, R: Sendable>(_ items: [T], width: Int, _ body: @Sendable (T) -> R) -> [R] {
        if items.count <= 1 { return items.map(body) }
        let results = Mutex<[R?]>(Array(repeating: nil, count: items.count))
        let next = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: min(width, items.count)) { _ in
            while true {
                let i = next.withLock { value in defer { value += 1 }; return value }
                if i >= items.count { return }
                let result = body(items[i])
                results.withLock { $0[i] = result }
            }
        }
        return results.withLock { $0.compactMap { $0 } }
    }
}
