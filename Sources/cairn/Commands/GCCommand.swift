import ArgumentParser
import CairnAudit
import CairnStore

struct GCCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc", abstract: "Remove blobs that no dataset references, and stale orphan files.")

    @OptionGroup var global: GlobalOptions

    @Flag(help: "List what would be removed; remove nothing.")
    var dryRun = false

    func run() throws {
        let store = try global.openStore()
        let report = try store.collectGarbage(dryRun: dryRun)
        if !dryRun {
            // One record per blob deleted (its digest), so the trail shows when each left the disk.
            let removed = report.unreferenced.map {
                AuditEvent(actor: AdminActor.current, action: "gc.remove", digest: $0.description, status: 0)
            }
            try store.appendAudit(removed + [AuditEvent(actor: AdminActor.current, action: "gc", status: 0,
                                                        detail: "\(report.unreferenced.count) blobs, \(report.orphanFiles.count) orphan files, "
                                                            + "\(report.bytesFreed) bytes")])
        }
        if global.json {
            Terminal.printJSON([
                "dry_run": dryRun, "unreferenced": report.unreferenced.map(\.description),
                "orphan_files": report.orphanFiles, "bytes_freed": report.bytesFreed,
            ] as [String: Any])
            return
        }
        if dryRun {
            for digest in report.unreferenced { print("would remove \(digest)") }
            for orphan in report.orphanFiles { print("would remove orphan \(orphan)") }
        }
        print("\(dryRun ? "would free" : "freed") \(Terminal.bytes(report.bytesFreed)): "
              + "\(report.unreferenced.count) unreferenced blobs, \(report.orphanFiles.count) orphan files")
    }
}
