import CairnFoundation
import Crypto
import Foundation

/// The entries root: a binary Merkle tree over the entries sorted by blob digest, with RFC 6962's
/// domain separation (leaf = SHA-256(0x00 || canonical entry), node = SHA-256(0x01 || left ||
/// right)); an odd node is carried up unchanged. Two parties with the same entries compute the
/// same root whatever order they learned them in; an empty set's root is SHA-256 of nothing.
/// Leaf hashes travel as one flat buffer of 32-byte hashes (a million entries: one allocation).
public enum Merkle {
    public static let hashSize = 32

    public static func leafHash<Bytes: DataProtocol>(_ canonicalEntry: Bytes) -> [UInt8] {
        var leaves: [UInt8] = []
        appendLeafHash(of: canonicalEntry, to: &leaves)
        return leaves
    }

    public static func appendLeafHash<Bytes: DataProtocol>(of canonicalEntry: Bytes, to leaves: inout [UInt8]) {
        var hasher = SHA256()
        hasher.update(data: [0x00])
        hasher.update(data: canonicalEntry)
        hasher.finalize().withUnsafeBytes { leaves.append(contentsOf: $0) }
    }

    /// `leaves` are concatenated leaf hashes, already in blob-digest order.
    public static func root(leaves: [UInt8]) -> String {
        precondition(leaves.count % hashSize == 0, "leaf hashes are 32 bytes each")
        let count = leaves.count / hashSize
        guard count > 0 else { return Hex.encode(SHA256.hash(data: [UInt8]())) }
        // A subtree of 2^k leaves starting at a multiple of 2^k reduces to the node the whole tree
        // has at level k (pairs never straddle it, and an odd last subtree carries up as the whole
        // tree's odd node would), so large trees reduce such subtrees on all cores first.
        var subtreeLeaves = count
        if count >= 1 << 16 {
            subtreeLeaves = 1
            while count / (subtreeLeaves * 2) >= 16 { subtreeLeaves *= 2 }
        }
        let width = subtreeLeaves, subtrees = (count + width - 1) / width
        var level = leaves
        level.withUnsafeMutableBytes { buffer in
            nonisolated(unsafe) let shared = buffer
            DispatchQueue.concurrentPerform(iterations: subtrees) { subtree in
                let start = subtree * width, end = min(start + width, count)
                reduce(UnsafeMutableRawBufferPointer(rebasing: shared[(start * hashSize)..<(end * hashSize)]))
            }
            for subtree in 1..<subtrees {
                UnsafeMutableRawBufferPointer(rebasing: buffer[(subtree * hashSize)..<((subtree + 1) * hashSize)])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: buffer[(subtree * width * hashSize)..<((subtree * width + 1) * hashSize)]))
            }
            reduce(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<(subtrees * hashSize)]))
        }
        return Hex.encode(level[0..<hashSize])
    }

    /// Reduces a run of nodes to its root, left in the first 32 bytes. Each level is written over
    /// the front of the one below it: pair i lands at i/2, never ahead of what is still to be read.
    private static func reduce(_ buffer: UnsafeMutableRawBufferPointer) {
        var count = buffer.count / hashSize
        while count > 1 {
            var next = 0, index = 0
            while index + 1 < count {
                var hasher = SHA256()
                hasher.update(data: [0x01])
                hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[(index * hashSize)..<((index + 2) * hashSize)]))
                hasher.finalize().withUnsafeBytes { digest in
                    UnsafeMutableRawBufferPointer(rebasing: buffer[(next * hashSize)..<((next + 1) * hashSize)]).copyMemory(from: digest)
                }
                next += 1
                index += 2
            }
            if index < count {
                UnsafeMutableRawBufferPointer(rebasing: buffer[(next * hashSize)..<((next + 1) * hashSize)])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: buffer[(index * hashSize)..<((index + 1) * hashSize)]))
                next += 1
            }
            count = next
        }
    }
}
