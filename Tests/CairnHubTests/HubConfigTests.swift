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
}
