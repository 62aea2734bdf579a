import ArgumentParser
import CairnAudit
import CairnStore
import Foundation

struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "audit", abstract: "Check and export the audit log.",
                                                    subcommands: [Verify.self, Export.self])

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Recompute the hash chain; exit 1 naming the first bad record.")

        @OptionGroup var global: GlobalOptions

        func run() throws { try AuditCommand.report(try global.openStore().verifyAudit(), json: global.json) }
    }

    /// Prints a verification (both the node's and the hub's chains); exit 1 naming the first bad record.
    static func report(_ result: AuditVerification, json: Bool) throws {
        if json {
            var object: [String: Any] = ["records": result.records, "ok": result.firstBad == nil]
            if let bad = result.firstBad { object["first_bad"] = ["seq": bad.seq, "reason": bad.reason] }
            Terminal.printJSON(object)
        } else if result.firstBad == nil {
            print("audit log intact: \(result.records) records, hash chain verified")
        }
        if let bad = result.firstBad {
            throw CommandFailure(status: 1, message: json ? nil : "audit log broken at record \(bad.seq): \(bad.reason)")
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print audit records, oldest first.")

        @OptionGroup var global: GlobalOptions

        @Option(help: "Only records at or after this time (ISO 8601, e.g. 2026-11-27T00:00:00Z).")
        var since: String?

        func run() throws {
            try AuditCommand.export(since: since, json: global.json) { start, body in
                try global.openStore().auditRecords(since: start, body)
            }
        }
    }

    /// Prints records (the node's or the hub's chain), oldest first, as text or NDJSON.
    static func export(since: String?, json: Bool,
                   records: (Date?, ([AuditRecord]) throws -> Void) throws -> Void) throws {
        var start: Date?
        if let since {
            guard let date = ISO8601DateFormatter().date(from: since) else {
                throw StoreError.invalidArgument("--since '\(since)' is not an ISO 8601 time like 2026-11-27T00:00:00Z")
            }
            start = date
        }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        try records(start) { page in
            for record in page {
                let e = record.event
                let time = formatter.string(from: Date(timeIntervalSince1970: Double(e.atMicroseconds) / 1_000_000))
                if json {
                    var object: [String: Any] = ["seq": record.seq, "at": time, "actor": e.actor, "action": e.action,
                                                 "hash": record.hash]
                    if let v = e.dataset { object["dataset"] = v }
                    if let v = e.digest { object["digest"] = v }
                    if let v = e.range { object["range"] = v }
                    if let v = e.bytes { object["bytes"] = v }
                    if let v = e.status { object["status"] = v }
                    if let v = e.detail { object["detail"] = v }
                    Terminal.printJSON(object)
                } else {
                    let fields = [String(record.seq), time, e.actor, e.action, e.dataset ?? "-", e.digest ?? "-", e.range ?? "-",
                                  e.bytes.map { String($0) } ?? "-", e.status.map { String($0) } ?? "-", e.detail ?? ""]
                    print(fields.joined(separator: "\t"))
                }
            }
        }
    }
}
