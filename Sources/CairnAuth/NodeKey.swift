import CairnFoundation
import CairnManifest
import Crypto
import Foundation
import JWTKit

/// The node's Ed25519 signing key: it signs the tokens `cairn token issue` prints (and, later,
/// snapshots). Kept as base64url of the 32-byte seed in `<data>/keys/node.ed25519`, mode 0600.
public struct NodeKey: Sendable {
    public let privateKey: Curve25519.Signing.PrivateKey

    public var publicKey: Curve25519.Signing.PublicKey { privateKey.publicKey }
    /// base64url of the 32 raw public-key bytes (a JWK's `x`); what other parties configure.
    public var publicKeyText: String { Base64URL.encode(publicKey.rawRepresentation) }
    /// The `kid` this key's tokens carry.
    public var keyID: String { Self.keyID(of: publicKey) }

    public static func path(dataDirectory: String) -> String { dataDirectory + "/keys/node.ed25519" }

    /// Loads the key, creating it on first use.
    public static func loadOrCreate(dataDirectory: String) throws -> NodeKey {
        let path = path(dataDirectory: dataDirectory)
        if FileManager.default.fileExists(atPath: path) { return try load(path: path) }
        try FileManager.default.createDirectory(atPath: dataDirectory + "/keys", withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let key = Curve25519.Signing.PrivateKey()
        let text = Base64URL.encode(key.rawRepresentation) + "\n"
        // Exclusive create: two processes initialising at once must not end up with different keys.
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if fd < 0 {
            if errno == EEXIST { return try load(path: path) }
            throw NodeKeyError.unwritable(path: path, reason: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        let written = text.utf8CString.withUnsafeBufferPointer { write(fd, $0.baseAddress, text.utf8.count) }
        guard written == text.utf8.count, fsync(fd) == 0 else {
            unlink(path)
            throw NodeKeyError.unwritable(path: path, reason: String(cString: strerror(errno)))
        }
        return NodeKey(privateKey: key)
    }

    public static func load(path: String) throws -> NodeKey {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw NodeKeyError.unreadable(path: path)
        }
        guard let seed = Base64URL.decode(text.trimmingCharacters(in: .whitespacesAndNewlines)),
              let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: seed)
        else { throw NodeKeyError.malformed(path: path) }
        return NodeKey(privateKey: key)
    }

    /// Parses a public key as `cairn key show` prints it.
    public static func publicKey(text: String) throws -> Curve25519.Signing.PublicKey {
        guard let raw = Base64URL.decode(text), raw.count == 32,
              let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw)
        else { throw NodeKeyError.malformedPublicKey(text) }
        return key
    }

    /// First 16 hex digits of the SHA-256 of the raw public key.
    public static func keyID(of key: Curve25519.Signing.PublicKey) -> String {
        Hex.encode(SHA256.hash(data: key.rawRepresentation).prefix(8))
    }
}

public enum NodeKeyError: Error, CustomStringConvertible {
    case unreadable(path: String)
    case unwritable(path: String, reason: String)
    case malformed(path: String)
    case malformedPublicKey(String)

    public var description: String {
        switch self {
        case .unreadable(let path): "cannot read the node key \(path) (run `cairn init`)"
        case .unwritable(let path, let reason): "cannot write the node key \(path): \(reason)"
        case .malformed(let path): "the node key \(path) is not a base64url Ed25519 seed"
        case .malformedPublicKey(let text): "'\(text)' is not a base64url Ed25519 public key (32 bytes)"
        }
    }
}
