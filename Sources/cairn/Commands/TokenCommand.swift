import ArgumentParser
import CairnAudit
import CairnAuth
import CairnStore
import Foundation

extension Scope: ExpressibleByArgument {}

struct TokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "token", abstract: "Issue and revoke access tokens.",
                                                    subcommands: [Issue.self, Revoke.self])

    struct Issue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a token signed by the node's key (stdout: the token only; details on stderr).")

        @OptionGroup var global: GlobalOptions

        @Option(help: "Who the token is for: a job or a user (the audit log's actor).")
        var subject: String

        @Option(help: "Comma-separated dataset ids the token grants (none for a search token).")
        var datasets: String = ""

        @Option(help: ArgumentHelp("read, ingest, admin (admin includes both), search (federated counts over the searchable "
            + "datasets) or monitor (/metrics and /readyz's reasons, for a scraper)."))
        var scope: Scope = .read

        @Option(help: "Lifetime: a number with s, m, h or d (e.g. 30m, 1h, 7d).")
        var ttl: String = "1h"

        @Option(help: "Node id to put in `aud` (the token then works on that node only).")
        var audience: String?

        func run() async throws {
            let store = try global.openStore()
            // A search token counts over whatever datasets the provider made searchable; it names none.
            let ids = (scope == .search || scope == .monitor) && datasets.isEmpty ? [] : try Self.datasetIDs(datasets)
            for id in ids where try !store.datasetExists(id) {
                throw StoreError.invalidArgument("dataset '\(id)' does not exist")
            }
            let lifetime = try Self.lifetime(ttl)
            let key = try NodeKey.loadOrCreate(dataDirectory: store.root)
            let issued = try await TokenIssuer(key: key).issue(subject: subject, datasets: ids, scopes: [scope],
                                                                audience: audience, ttl: lifetime)
            let expires = ISO8601DateFormatter().string(from: Date().addingTimeInterval(lifetime))
            try store.appendAudit([AuditEvent(actor: AdminActor.current, action: "token.issue", status: 0,
                                              detail: "jti \(issued.id) for \(subject), scope \(scope.rawValue), datasets "
                                                + ids.joined(separator: ",") + ", expires \(expires)")])
            if global.json {
                Terminal.printJSON(["token": issued.token, "jti": issued.id, "expires": expires, "subject": subject,
                                    "datasets": ids, "scope": scope.rawValue])
            } else {
                print(issued.token)
                Terminal.error("token \(issued.id) for \(subject) (\(scope.rawValue) on \(ids.joined(separator: ","))) expires \(expires)")
            }
        }

        /// `--ttl`: a positive number with s, m, h or d.
        static func lifetime(_ text: String) throws -> TimeInterval {
            let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
            guard let unit = text.last.flatMap({ units[$0] }), let value = Double(text.dropLast()), value > 0 else {
                throw StoreError.invalidArgument("--ttl '\(text)' must be a positive number followed by s, m, h or d")
            }
            return value * unit
        }

        /// `--datasets`: comma-separated ids, at least one.
        static func datasetIDs(_ text: String) throws -> [String] {
            let ids = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard !ids.isEmpty else { throw StoreError.invalidArgument("--datasets needs at least one dataset id") }
            return ids
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a token by its id (jti); a running node refuses it within a second.")

        @OptionGroup var global: GlobalOptions

        @Argument(help: "The token's jti, as `token issue` printed it.")
        var jti: String

        func run() throws {
            let store = try global.openStore()
            let fresh = try store.revokeToken(jti)
            try store.appendAudit([AuditEvent(actor: AdminActor.current, action: "token.revoke", status: 0,
                                              detail: "jti \(jti)" + (fresh ? "" : " (already revoked)"))])
            if global.json { Terminal.printJSON(["jti": jti, "revoked": true, "already_revoked": !fresh]) } else {
                print(fresh ? "revoked \(jti)" : "\(jti) was already revoked")
            }
        }
    }
}

/// The actor of commands run on the node: the login user.
enum AdminActor {
    static var current: String { "cli:" + (ProcessInfo.processInfo.environment["USER"] ?? String(getuid())) }
}
