import ArgumentParser
import CPosix
import CairnAudit
import CairnAuth
import CairnManifest
import CairnNode
import CairnStore
import Foundation
import Logging

struct NodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "node", abstract: "Run the node server.",
                                                    subcommands: [Serve.self, Rename.self, Resume.self])

    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve the node HTTP API until SIGTERM/SIGINT (initialises the data directory if missing).")

        /// The config file (`--config`, else `$CAIRN_CONFIG`; Ops/node.example.json) holds the
        /// server's keys and the storage keys; flags override it.
        @OptionGroup var global: GlobalOptions

        @Option(help: "HOST:PORT to listen on (default 127.0.0.1:8700; port 0 picks a free one).")
        var listen: String?

        @Option(help: "This node's id: the `aud` its tokens must carry, its name at the hub.")
        var nodeID: String?

        @Option(help: "The hub's base URL (replication arrives with the manifests issue).")
        var hub: String?

        func run() async throws {
            // Backpressure bounds what each stream holds; this bounds what glibc keeps after the
            // buffers are freed: two arenas, and response chunks (256 KiB) mapped directly so they
            // return to the system. 200 slow readers of a 2 GiB blob: 98 MB resident with it,
            // ~180 MB without (test_node_memory.py).
            cairn_tune_malloc_for_server()
            var settings = try global.configPath.map(NodeConfig.load) ?? NodeConfig()
            if let listen { settings.listen = listen }
            if let nodeID { settings.nodeID = nodeID }
            if let hub { settings.hubURL = hub }
            _ = try settings.listenAddress()
            var logger = Logger(label: "cairn.node")
            logger.logLevel = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) } ?? .info
            let server = try await NodeServer.make(config: settings, dataDirectory: global.dataDirectory,
                                                  storage: global.storageConfig(), logger: logger)
            try await server.run { url in
                print("cairn node \(server.nodeID) listening on \(url) (data \(server.api.store.root))")
                Terminal.flushStdout()
            }
        }
    }

    struct Rename: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Give the node a new id: re-signs every published dataset under it (stop `node serve` first).",
            discussion: """
                Snapshots name the node they come from and are signed for it, so renaming drops them and \
                publishes each dataset again as a first snapshot under the new id. Enroll the new id at the \
                hub (`cairn hub enroll NEW_ID KEY`); the hub keeps what the old id pushed until its operator drops it.
                """)

        @OptionGroup var global: GlobalOptions

        @Argument(help: "The new node id: 1-128 of A-Z a-z 0-9 . _ -")
        var newID: String

        func run() throws {
            let store = try global.openStore()
            let old = try store.nodeID()
            let key = try NodeKey.loadOrCreate(dataDirectory: store.root)
            let datasets = try store.renameNode(to: newID)
            try store.appendAudit([AuditEvent(actor: AdminActor.current, action: "node.rename", status: 0,
                                              detail: "\(old ?? "(none)") -> \(newID)")])
            let publisher = Publisher(store: store, nodeID: newID, key: key.privateKey, keyID: key.keyID)
            var republished: [String] = []
            for dataset in datasets {
                if case .published(let snapshot) = try publisher.publish(dataset) {
                    republished.append("\(dataset) seq \(snapshot.seq) \(snapshot.digest)")
                }
            }
            if global.json {
                Terminal.printJSON(["old": old ?? NSNull(), "node": newID, "republished": republished])
            } else {
                print("node \(old ?? "(none)") is now \(newID); enroll it at the hub: cairn hub enroll \(newID) \(key.publicKeyText)")
                for line in republished { print("re-signed \(line)") }
            }
        }
    }

    struct Resume: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Push again the datasets whose pushes the hub refused for good (after fixing the cause at the hub).",
            discussion: "A running `node serve` picks this up within a second; a starting one resumes on its own.")

        @OptionGroup var global: GlobalOptions

        func run() throws {
            let store = try global.openStore()
            let halted = try store.outbox().halted.map(\.dataset)
            try store.outboxResume()
            try store.appendAudit([AuditEvent(actor: AdminActor.current, action: "replication.resume", status: 0,
                                              detail: halted.isEmpty ? "nothing halted" : halted.joined(separator: ","))])
            if global.json { Terminal.printJSON(["resumed": halted]) } else {
                print(halted.isEmpty ? "no dataset was halted" : "resumed \(halted.joined(separator: ", "))")
            }
        }
    }
}
