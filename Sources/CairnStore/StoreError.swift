import CairnObjectStore
/// Every failure the store reports carries the context an operator needs: path, digest, frame.
public enum StoreError: Error, CustomStringConvertible, Equatable, Sendable {
    case notInitialized(path: String)
    case io(op: String, path: String, errno: Int32)
    case diskFull(path: String)
    case notFound(BlobDigest)
    case missing(BlobDigest, path: String)
    case corruptFrame(BlobDigest, frame: Int, path: String)
    case corruptBlob(BlobDigest, path: String, reason: String)
    case digestMismatch(expected: BlobDigest, actual: BlobDigest, path: String)
    case rangeNotSatisfiable(BlobDigest, start: UInt64, end: UInt64, size: UInt64)
    case codec(String)
    case invalidArgument(String)
    case index(String)
    /// The blob bucket refused or failed a request (after retries).
    case objectStore(ObjectStoreError)

    public var description: String {
        switch self {
        case .notInitialized(let path):
            return "no Cairn store at \(path) (run `cairn init` first)"
        case .io(let op, let path, let code):
            return "\(op) \(path): \(String(cString: strerror(code)))"
        case .diskFull(let path):
            return "disk full while writing \(path); nothing was stored"
        case .notFound(let digest):
            return "blob \(digest) is not in this store"
        case .missing(let digest, let path):
            return "blob \(digest) is indexed but its file \(path) is missing"
        case .corruptFrame(let digest, let frame, let path):
            return "blob \(digest) is corrupt: frame \(frame) of \(path) fails its checksum"
        case .corruptBlob(let digest, let path, let reason):
            return "blob \(digest) is corrupt (\(path)): \(reason)"
        case .digestMismatch(let expected, let actual, let path):
            return "blob \(path) should hash to \(expected) but hashes to \(actual)"
        case .rangeNotSatisfiable(let digest, let start, let end, let size):
            return "range \(start)-\(end) is outside blob \(digest) of \(size) bytes"
        case .codec(let message):
            return "codec error: \(message)"
        case .invalidArgument(let message):
            return message
        case .index(let message):
            return "index error: \(message)"
        case .objectStore(let error):
            return "object store: \(error)"
        }
    }
}

import Glibc
