import CairnObjectStore
import Foundation
import NIOCore

/// Where a blob reader's stored bytes come from: a file in the data directory, or an object in
/// the bucket. Offsets address the blob file as stored (frames, then the seek table).
protocol BlobSource: AnyObject {
    /// Names the stored bytes in errors: a path, or `s3://bucket/key`.
    var path: String { get }
    func readExactly(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws
}

extension PosixFile: BlobSource {}

/// A blob object read with ranged GETs. The first read near the end (the seek table's footer)
/// fetches the last `tailBytes` at once, so the table itself costs no second request. A streaming
/// reader `prefetch`es each span before it reads it, without blocking, and names the next one,
/// whose GET then runs while the current span is sent: one request ahead per stream.
final class ObjectBlobSource: BlobSource {
    let client: S3Client
    let key: String
    let digest: BlobDigest
    let size: UInt64
    var path: String { "s3://\(client.bucket)/\(key)" }
    private var tail: [UInt8] = []
    private var window: (range: Range<UInt64>, bytes: ByteBuffer)?
    private var ahead: (range: Range<UInt64>, bytes: EventLoopFuture<ByteBuffer>)?
    static let tailBytes: UInt64 = 64 << 10

    init(client: S3Client, key: String, digest: BlobDigest, size: UInt64) {
        self.client = client
        self.key = key
        self.digest = digest
        self.size = size
    }

    func readExactly(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        let end = offset + UInt64(buffer.count)
        guard end <= size else {
            throw StoreError.corruptBlob(digest, path: path, reason: "read of \(buffer.count) bytes at \(offset) past the stored \(size)")
        }
        if let window, offset >= window.range.lowerBound, end <= window.range.upperBound {
            let from = Int(offset - window.range.lowerBound)
            window.bytes.withUnsafeReadableBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[from..<(from + buffer.count)])) }
            return
        }
        let tailStart = size - min(size, Self.tailBytes)
        if offset >= tailStart {
            if tail.isEmpty && size > 0 {
                let fetched = try translate { try client.getSuffix(key, count: size - tailStart, objectSize: size) }
                guard UInt64(fetched.count) == size - tailStart else {
                    throw StoreError.corruptBlob(digest, path: path, reason: "asked for the last \(size - tailStart) bytes, got \(fetched.count)")
                }
                tail = fetched
            }
            let from = Int(offset - tailStart)
            tail.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[from..<(from + buffer.count)])) }
            return
        }
        try translate { try client.get(key, range: offset..<end, objectSize: size, into: buffer) }
    }

    /// Fetches stored bytes `span` (unless held already) so that reads inside it do not wait, and
    /// starts fetching `next`, the span a sequential reader wants after it.
    func prefetch(_ span: Range<UInt64>, next: Range<UInt64>?) async throws {
        if !span.isEmpty, !holds(span) {
            guard span.upperBound <= size else {
                throw StoreError.corruptBlob(digest, path: path, reason: "read of \(span) past the stored \(size) bytes")
            }
            let pending: EventLoopFuture<ByteBuffer>
            if let ahead, ahead.range == span { pending = ahead.bytes } else { pending = client.fetch(key, range: span, objectSize: size) }
            ahead = nil
            window = nil
            do { window = (span, try await pending.get()) } catch let error as ObjectStoreError { throw storeError(error) }
        }
        if let next, !next.isEmpty, next.upperBound <= size, ahead?.range != next, !holds(next) {
            ahead = (next, client.fetch(key, range: next, objectSize: size))
        }
    }

    private func holds(_ span: Range<UInt64>) -> Bool {
        guard let window else { return false }
        return span.lowerBound >= window.range.lowerBound && span.upperBound <= window.range.upperBound
    }

    /// A missing object is a missing blob file, an object of another size a damaged one; the
    /// rest (unreachable, refused) is the bucket's failure, not the blob's.
    private func storeError(_ error: ObjectStoreError) -> StoreError {
        switch error {
        case .notFound: .missing(digest, path: path)
        case .integrity(_, _, _, let reason): .corruptBlob(digest, path: path, reason: reason)
        default: .objectStore(error)
        }
    }

    /// Object-store failures as the store's errors: a missing object is a missing blob file.
    private func translate<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as ObjectStoreError { throw storeError(error) }
    }
}
