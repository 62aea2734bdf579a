import ArgumentParser
import CairnAudit
import CairnAuth
import CairnHTTP
import CairnHub
import CairnManifest
import CairnStore
import Foundation
import Logging

/// `cairn hub ...`: the federation hub. Its data directory (`--data`, `$CAIRN_DATA`, else
/// `./cairn-data`) holds `hub.sqlite` and the hub's signing key; it is created when missing.
struct HubCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hub", abstract: "Run and administer the federation hub.",
        subcommands: [Serve.self, Enroll.self, Grant.self, Key.self, Audit.self])

    static func open(_ global: GlobalOptions) throws -> (index: HubIndex, key: NodeKey) {
        let root = global.dataDirectory
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        return (try HubIndex(path: root + "/hub.sqlite"), try NodeKey.loadOrCreate(dataDirectory: root))
    }

    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Serve the hub API until SIGTERM/SIGINT.")

        /// `--config` names the hub's JSON config file (Ops/hub.example.json lists every key);
        /// `$CAIRN_CONFIG`, which names a node's, is not read here.
        @OptionGroup var global: GlobalOptions

        @Option(help: "HOST:PORT to listen on (default 127.0.0.1:8710; port 0 picks a free one).")
        var listen: String?

        func run() async throws {
            var settings = try global.config.map(HubConfig.load) ?? HubConfig()
            if let listen { settings.listen = listen }
            _ = try ServerConfig.parseListen(settings.listen)
            let (index, key) = try HubCommand.open(global)
            var logger = Logger(label: "cairn.hub")
            logger.logLevel = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) } ?? .info
            try await HubServer(index: index, config: settings, key: key, logger: logger).run { url in
                print("cairn hub listening on \(url) (data \(global.dataDirectory))")
                Terminal.flushStdout()
            }
        }
    }

    struct Enroll: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register a node and its public key (`cairn key show` on the node).")

        @OptionGroup var global: GlobalOptions

        @Argument(help: "The node's id, as it runs `node serve --node-id`.")
        var nodeID: String

        // Captured as "unrecognised" input: a base64url key begins with '-' one time in 64, and
        // would otherwise be taken for an option.
        @Argument(parsing: .allUnrecognized,
                  help: ArgumentHelp("The node's Ed25519 public key, base64url (as `cairn key show` prints it).", valueName: "public-key"))
        var publicKeyArgument: [String] = []

        func validate() throws {
            guard publicKeyArgument.count == 1 else {
                throw ValidationError("expected one public key after the node id, got \(publicKeyArgument.count)")
            }
        }

        func run() throws {
            let publicKey = publicKeyArgument[0]
            _ = try NodeKey.publicKey(text: publicKey)
            let index = try HubCommand.open(global).index
            try index.enroll(node: nodeID, publicKey: publicKey)
            try index.appendAudit([AuditEvent(actor: AdminActor.current, action: "node.enroll", status: 0,
                                              detail: "\(nodeID), key \(NodeKey.keyID(of: try NodeKey.publicKey(text: publicKey)))")])
            if global.json { Terminal.printJSON(["node": nodeID, "enrolled": true]) } else { print("enrolled \(nodeID)") }
        }
    }

    struct Grant: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a token signed by the hub's key: for a job on one node (--scope read; the node must trust "
                + "the hub's key), or for the hub's catalogue and count queries (--scope catalog).")

        @OptionGroup var global: GlobalOptions

        @Option(help: "The job, person or service the token is for.")
        var subject: String

        @Option(help: ArgumentHelp("read (datasets on one node), catalog (this hub's catalogue) or search (federated search: "
            + "with --node NODE for that node's /eucaim/search, without for this hub's)."))
        var scope = "read"

        @Option(help: "Comma-separated dataset ids (read tokens).")
        var datasets: String?

        @Option(help: "The node id the token is for, its `aud` (read tokens).")
        var node: String?

        @Option(help: "Lifetime: a number with s, m, h or d.")
        var ttl = "24h"

        func validate() throws {
            switch scope {
            case Scope.read.rawValue:
                guard datasets != nil, node != nil else { throw ValidationError("a read token needs --datasets and --node") }
            case Scope.catalog.rawValue:
                guard datasets == nil, node == nil else { throw ValidationError("a catalog token takes no --datasets or --node") }
            case Scope.search.rawValue:
                guard datasets == nil else { throw ValidationError("a search token takes no --datasets") }
            default:
                throw ValidationError("--scope must be read, catalog or search")
            }
        }

        func run() async throws {
            let lifetime = try TokenCommand.Issue.lifetime(ttl)
            let (index, key) = try HubCommand.open(global)
            let issuer = TokenIssuer(key: key)
            let issued = if let datasets, let node {
                try await issuer.issue(subject: subject, datasets: try TokenCommand.Issue.datasetIDs(datasets), scopes: [.read],
                                       audience: node, ttl: lifetime)
            } else if scope == Scope.search.rawValue {
                try await issuer.issue(subject: subject, datasets: [], scopes: [.search], audience: node ?? HubServer.audience, ttl: lifetime)
            } else {
                try await issuer.issue(subject: subject, datasets: [], scopes: [.catalog], audience: HubServer.audience, ttl: lifetime)
            }
            try index.appendAudit([AuditEvent(actor: AdminActor.current, action: "token.issue", dataset: datasets, status: 0,
                                              detail: "jti \(issued.id) for \(subject), scope \(scope), audience \(node ?? HubServer.audience), ttl \(ttl)")])
            if global.json {
                Terminal.printJSON(["token": issued.token, "jti": issued.id, "scope": scope, "audience": node ?? HubServer.audience])
            } else {
                print(issued.token)
            }
        }
    }

    struct Key: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the hub's public key (nodes list it as a trusted issuer).")

        @OptionGroup var global: GlobalOptions

        func run() throws {
            let (_, key) = try HubCommand.open(global)
            if global.json { Terminal.printJSON(["public_key": key.publicKeyText, "key_id": key.keyID]) } else { print(key.publicKeyText) }
        }
    }

    struct Audit: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The hub's audit log: enrolments, grants, snapshots applied and refused.",
            subcommands: [Verify.self, Export.self])

        struct Verify: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Recompute the hub's hash chain; exit 1 naming the first bad record.")

            @OptionGroup var global: GlobalOptions

            func run() throws { try AuditCommand.report(try HubCommand.open(global).index.verifyAudit(), json: global.json) }
        }

        struct Export: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Print the hub's audit records, oldest first.")

            @OptionGroup var global: GlobalOptions

            @Option(help: "Only records at or after this time (ISO 8601, e.g. 2026-11-27T00:00:00Z).")
            var since: String?

            func run() throws {
                let index = try HubCommand.open(global).index
                try AuditCommand.export(since: since, json: global.json) { start, body in try index.auditRecords(since: start, body) }
            }
        }
    }
}
