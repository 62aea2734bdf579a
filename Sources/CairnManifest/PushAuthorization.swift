import CairnFoundation
import Crypto

/// A node proves who is pushing before the hub reads a byte of the body (or holds an intake slot
/// for it): the request carries `Cairn-Push: t=<unix seconds>;sig=<base64url>`, the node key's
/// Ed25519 signature over `cairn-push/v1`, the node and dataset ids, the snapshot's digest, the
/// time and the body's Content-Length, one per line. The hub checks it against the enrolled key
/// within its clock skew; the snapshot inside still carries its own signature, checked after.
public struct PushAuthorization: Sendable, Equatable {
    public static let headerName = "Cairn-Push"
    public var timestamp: Int64
    public var signature: [UInt8]

    public static func message(node: String, dataset: String, digest: String, timestamp: Int64, contentLength: Int) -> [UInt8] {
        Array("cairn-push/v1\n\(node)\n\(dataset)\n\(digest)\n\(timestamp)\n\(contentLength)".utf8)
    }

    /// The header value for a push of `contentLength` body bytes at `timestamp`.
    public static func header(key: Curve25519.Signing.PrivateKey, node: String, dataset: String, digest: String,
                              timestamp: Int64, contentLength: Int) throws -> String {
        let signature = try key.signature(for: message(node: node, dataset: dataset, digest: digest, timestamp: timestamp,
                                                       contentLength: contentLength))
        return "t=\(timestamp);sig=\(Base64URL.encode(signature))"
    }

    /// Parses a header value; nil when it is not `t=<integer>;sig=<base64url of 64 bytes>`.
    public init?(header: String) {
        var timestamp: Int64?, signature: [UInt8]?
        for field in header.split(separator: ";") {
            let parts = field.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { return nil }
            switch parts[0].trimmingCharacters() {
            case "t": timestamp = Int64(parts[1].trimmingCharacters())
            case "sig": signature = Base64URL.decode(parts[1].trimmingCharacters()).map { Array($0) }
            default: return nil
            }
        }
        // A time outside 1970-9999 is no time a node sends, and keeps every difference in range.
        guard let timestamp, (0...253_402_300_799).contains(timestamp), let signature, signature.count == 64 else { return nil }
        self.timestamp = timestamp
        self.signature = signature
    }

    /// Whether `key` signed this push of `contentLength` bytes, within `skew` seconds of `now`.
    public func isValid(for key: Curve25519.Signing.PublicKey, node: String, dataset: String, digest: String,
                        contentLength: Int, now: Int64, skew: Int64) -> Bool {
        // Widened: neither operand comes from a trusted source's arithmetic.
        let (difference, overflow) = now.subtractingReportingOverflow(timestamp)
        guard !overflow, difference.magnitude <= skew.magnitude else { return false }
        return key.isValidSignature(signature, for: Self.message(node: node, dataset: dataset, digest: digest,
                                                                 timestamp: timestamp, contentLength: contentLength))
    }
}

private extension Substring {
    func trimmingCharacters() -> String {
        var s = self
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}
