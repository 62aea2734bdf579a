import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import NIOSSL

/// What the node's and the hub's servers share: JSON config files with strict keys, `HOST:PORT`
/// listen addresses, and HTTP/1 with or without TLS.
public enum ServerConfig {
    /// Reads a JSON config file; the type's decoder keeps defaults for missing keys and calls
    /// `refuseUnknownKeys`, so a typo is an error rather than a silently ignored setting.
    public static func load<Config: Decodable>(_ type: Config.Type, path: String) throws -> Config {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ServerConfigError.unreadable(path: path, reason: error.localizedDescription)
        }
        do { return try JSONDecoder().decode(Config.self, from: data) } catch {
            throw ServerConfigError.invalid(path: path, reason: "\(error)")
        }
    }

    /// `alsoKnown`: keys another reader of the same file takes (the storage keys in a node's file).
    public static func refuseUnknownKeys<Keys: CodingKey>(in decoder: any Decoder, known: Keys.Type, alsoKnown: Set<String> = []) throws {
        let unknown = try decoder.container(keyedBy: AnyKey.self).allKeys.map(\.stringValue)
            .filter { Keys(stringValue: $0) == nil && !alsoKnown.contains($0) }
        if !unknown.isEmpty { throw ServerConfigError.unknownKeys(unknown.sorted()) }
    }

    /// `HOST:PORT` (IPv6 hosts in brackets), the port 0-65535.
    public static func parseListen(_ text: String) throws -> (host: String, port: Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              (0...65535).contains(port), colon != text.startIndex
        else { throw ServerConfigError.invalidListen(text) }
        return (String(text[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]")), port)
    }

    /// HTTP/1 with the idle timeout and each connection held to `connections`' budget, over TLS
    /// (1.2 or later) when a PEM certificate chain and key are both given; the scheme to print.
    /// `onEventLoop`: each connection's requests are handled on its event loop (`EventLoopChildChannel`),
    /// and those `immediate` answers are answered there before they reach the application.
    public static func server(idleTimeoutSeconds: Double, connections: ConnectionBudget, tlsCertificate: String?, tlsKey: String?,
                              onEventLoop: Bool = false, immediate: (serverName: String, respond: ImmediateResponder)? = nil) throws
        -> (builder: HTTPServerBuilder, scheme: String) {
        let configuration = HTTP1Channel.Configuration(additionalChannelHandlers: [connections.guardHandler()],
                                                       idleTimeout: .milliseconds(Int64(idleTimeoutSeconds * 1000)))
        let http1 = onEventLoop
            ? HTTPServerBuilder { responder in
                EventLoopChildChannel(HTTP1Channel(responder: responder, configuration: configuration), immediate: immediate)
            }
            : HTTPServerBuilder.http1(configuration: configuration)
        switch (tlsCertificate, tlsKey) {
        case (nil, nil):
            return (http1, "http")
        case (let certificate?, let key?):
            let tls: TLSConfiguration
            do {
                let chain = try NIOSSLCertificate.fromPEMFile(certificate).map { NIOSSLCertificateSource.certificate($0) }
                let privateKey = try NIOSSLPrivateKey(file: key, format: .pem)
                tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(privateKey))
            } catch {
                throw ServerConfigError.tls("cannot load certificate \(certificate) or key \(key): \(error)")
            }
            var minimum = tls
            minimum.minimumTLSVersion = .tlsv12
            return (try .tls(http1, tlsConfiguration: minimum), "https")
        default:
            throw ServerConfigError.tls("tls_certificate and tls_key must be set together")
        }
    }

    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}

public enum ServerConfigError: Error, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case invalid(path: String, reason: String)
    case unknownKeys([String])
    case invalidListen(String)
    case tls(String)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason): "cannot read config \(path): \(reason)"
        case .invalid(let path, let reason): "config \(path) is not valid: \(reason)"
        case .unknownKeys(let keys): "unknown config keys: \(keys.joined(separator: ", "))"
        case .invalidListen(let value): "listen address '\(value)' must be HOST:PORT"
        case .tls(let reason): "TLS: \(reason)"
        }
    }
}

extension HTTPResponse.Status {
    /// RFC 4918's 507, which HTTPTypes does not name: the node's and the hub's answer to a full disk.
    public static let insufficientStorage = HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage")
}
