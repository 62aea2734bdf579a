import CairnHTTP
import CairnStore
@testable import CairnNode
import Foundation
import Testing

@Suite struct NodeConfigTests {
    @Test func exampleConfigInOpsParses() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Ops/node.example.json").path
        let config = try NodeConfig.load(path: path)
        #expect(config.nodeID == "hospital-a")
        #expect(config.trustedIssuers.first?.name == "hub")
        #expect(try config.listenAddress() == ("0.0.0.0", 8700))
        #expect(config.publicURL == "https://cairn.hospital-a.example.org")
    }

    /// The scaled-out example: the server's keys and the storage keys share one file, and each
    /// reader knows every key in it.
    @Test func exampleScaledOutConfigParsesForTheServerAndTheStore() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Ops/node.scaled-out.example.json").path
        let config = try NodeConfig.load(path: path)
        #expect(config.nodeID == "hospital-a")
        let (storage, otherKeys) = try StorageConfig.load(path: path)
        #expect(storage.index.description == "postgres://cairn@pg.hospital-a.internal:5432/cairn")
        #expect(!storage.indexAllowPlaintext)
        #expect(storage.blobs == .s3(bucket: "cairn-hospital-a"))
        #expect(storage.s3Endpoint == "https://rgw.ceph.hospital-a.internal" && storage.s3Region == "default")
        #expect(otherKeys.isSubset(of: NodeConfig.fileKeys) && !otherKeys.isEmpty)
    }

    @Test func publicURLMustBeHTTP() throws {
        #expect(throws: ServerConfigError.self) { try JSONDecoder().decode(NodeConfig.self, from: Data(#"{"public_url": "node:8700"}"#.utf8)) }
        let config = try JSONDecoder().decode(NodeConfig.self, from: Data(#"{"public_url": "https://gw.example.org/"}"#.utf8))
        #expect(config.publicURL == "https://gw.example.org")
    }

    @Test func defaultsAndStrictness() throws {
        let empty = try JSONDecoder().decode(NodeConfig.self, from: Data("{}".utf8))
        #expect(empty == NodeConfig())
        #expect(try empty.listenAddress() == ("127.0.0.1", 8700))
        #expect(throws: ServerConfigError.self) { try JSONDecoder().decode(NodeConfig.self, from: Data(#"{"lisen": "x"}"#.utf8)) }
        for bad in ["8700", "host:", "host:99999", ":80"] {
            var config = NodeConfig()
            config.listen = bad
            #expect(throws: ServerConfigError.self, "\(bad)") { try config.listenAddress() }
        }
        var v6 = NodeConfig()
        v6.listen = "[::1]:8700"
        #expect(try v6.listenAddress() == ("::1", 8700))
    }
}
