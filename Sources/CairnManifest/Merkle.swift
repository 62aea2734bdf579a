import CairnStore
import Crypto

/// The entries root: a binary Merkle tree over the entries sorted by blob digest, with RFC 6962's
/// domain separation (leaf = SHA-256(0x00 || canonical entry), node = SHA-256(0x01 || left ||
/// right)); an odd node is carried up unchanged. Two parties with the same entries compute the
/// same root whatever order they learned them in; an empty set's root is SHA-256 of nothing.
public enum Merkle {
    public static func leafHash(_ canonicalEntry: [UInt8]) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data: [0x00])
        hasher.update(data: canonicalEntry)
        return Array(hasher.finalize())
    }

    /// `leaves` must already be in blob-digest order.
    public static func root(leaves: [[UInt8]]) -> String {
        guard !leaves.isEmpty else { return Hex.encode(SHA256.hash(data: [UInt8]())) }
        var level = leaves
        while level.count > 1 {
            var next: [[UInt8]] = []
            next.reserveCapacity((level.count + 1) / 2)
            var index = 0
            while index + 1 < level.count {
                var hasher = SHA256()
                hasher.update(data: [0x01])
                hasher.update(data: level[index])
                hasher.update(data: level[index + 1])
                next.append(Array(hasher.finalize()))
                index += 2
            }
            if index < level.count { next.append(level[index]) }
            level = next
        }
        return Hex.encode(level[0])
    }
}
