@testable import CairnAuth
import CairnHTTP
@testable import CairnHub
import CairnManifest
import Foundation
import Logging
import Testing

@Suite struct HubConfigTests {
    @Test func exampleConfigInOpsParses() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Ops/hub.example.json").path
        let config = try HubConfig.load(path: path)
        #expect(config.listen == "0.0.0.0:8710" && config.minCount == 5 && config.tlsKey == "/etc/cairn/hub.key")
    }

    @Test func defaultsAndStrictness() throws {
        #expect(try JSONDecoder().decode(HubConfig.self, from: Data("{}".utf8)) == HubConfig())
        #expect(HubConfig().listen == "127.0.0.1:8710" && HubConfig().minCount == 5 && !HubConfig().openCatalog)
        #expect(throws: ServerConfigError.self) { try JSONDecoder().decode(HubConfig.self, from: Data(#"{"min_cout": 3}"#.utf8)) }
        #expect(throws: ServerConfigError.self) { try JSONDecoder().decode(HubConfig.self, from: Data(#"{"min_count": 0}"#.utf8)) }
    }

    /// Rows under the threshold (subjects or studies) are left out altogether, and out of the totals.
    @Test func smallCountsAreLeftOut() async throws {
        var config = HubConfig()
        config.minCount = 5
        let server = try await HubServer(index: try HubIndex(path: temporaryPath()), config: config,
                                         key: NodeKey(privateKey: .init()), logger: Logger(label: "test"))
        let answer = server.countAnswer([("n1", "big", 40, 90), ("n2", "tiny", 2, 3), ("n3", "few-studies", 6, 4), ("n4", "none", 0, 0)])
        let rows = answer["datasets"]!.array!
        #expect(rows.map { $0["id"]! } == [.string("big")])
        #expect(rows[0]["subjects"] == .int(40) && rows[0]["studies"] == .int(90) && rows[0]["suppressed"] == nil)
        #expect(answer["total"] == .object(["subjects": .int(40), "studies": .int(90)]))
    }
}
