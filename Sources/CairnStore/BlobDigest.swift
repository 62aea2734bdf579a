import CairnFoundation
import Crypto

/// A blob's name: `sha256:<64 lowercase hex>` of its original bytes (OCI digest form).
public struct BlobDigest: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The 64 lowercase hex characters.
    public let hex: String

    public init?(hex: String) {
        guard hex.utf8.count == 64,
              hex.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) })
        else { return nil }
        self.hex = hex
    }

    /// Parses `sha256:<hex>`, or bare hex, as users paste either.
    public init?(parsing text: String) {
        let body = text.hasPrefix("sha256:") ? String(text.dropFirst(7)) : text
        self.init(hex: body)
    }

    init(_ digest: SHA256Digest) { hex = Hex.encode(digest) }

    public var description: String { "sha256:" + hex }

    public static func < (lhs: BlobDigest, rhs: BlobDigest) -> Bool { lhs.hex < rhs.hex }

    /// SHA-256 of an in-memory buffer (tests, small payloads).
    public static func of<Bytes: Sequence>(_ bytes: Bytes) -> BlobDigest where Bytes.Element == UInt8 {
        var hasher = SHA256()
        hasher.update(data: Array(bytes))
        return BlobDigest(hasher.finalize())
    }
}

extension BlobDigest {
    /// A digest read back from the index: a damaged row is an error naming the value, not a crash.
    init(indexed hex: String?) throws {
        guard let hex, let digest = BlobDigest(hex: hex) else {
            throw StoreError.index("an index row holds a malformed digest '\(hex ?? "NULL")'")
        }
        self = digest
    }
}

extension BlobDigest {
    /// The digest of a file's bytes, read in 1 MiB pieces.
    public static func ofFile(at path: String) throws -> BlobDigest {
        let file = try PosixFile.openForReading(path)
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = try buffer.withUnsafeMutableBytes { try file.read(into: $0) }
            if count == 0 { break }
            buffer.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
        }
        return BlobDigest(hasher.finalize())
    }
}
