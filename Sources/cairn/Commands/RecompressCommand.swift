import ArgumentParser
import CairnBlobs
import CairnIngest
import CairnStore
import Foundation

struct RecompressCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recompress",
        abstract: "Rewrite stored blobs under a storage profile, in place (crash-safe, resumable).",
        discussion: """
            Each blob is read through its frame checksums, written again as ingest would write it under the profile, \
            checked against its digest, made durable and renamed over the old file in the transaction that updates its row. \
            Interrupted, it resumes where it stopped: blobs already under the profile are skipped. Raw blobs stay raw.
            """)

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("archive (smallest), balanced or fast (fastest reads).", valueName: "profile"))
    var profile: StorageProfile

    @Option(help: "Only this dataset's blobs.")
    var dataset: String?

    @OptionGroup var parallel: ParallelOptions

    func run() throws {
        let store = try global.openStore()
        if let dataset, try !store.datasetExists(dataset) { throw StoreError.invalidArgument("dataset '\(dataset)' does not exist") }
        let total = try store.countToRecompress(profile: profile, dataset: dataset)
        let progress = ProgressBar(label: "recompress", totalItems: total, totalBytes: 0)
        let start = ContinuousClock.now
        let report = try Recompressor.run(store: store, profile: profile, dataset: dataset, jobs: parallel.jobs) { items, _ in
            progress.update(items: items, bytes: 0)
        }
        progress.finish()
        let seconds = (ContinuousClock.now - start) / .seconds(1)
        for failure in report.failures { Terminal.error("not rewritten: \(failure)") }
        if global.json {
            Terminal.printJSON(["rewritten": report.rewritten, "kept": report.keptAsIs, "failed": report.failed,
                                "stored_before": report.storedBefore, "stored_after": report.storedAfter,
                                "profile": profile.rawValue, "seconds": seconds] as [String: Any])
        } else {
            let saved = report.storedBefore > 0 ? 1 - Double(report.storedAfter) / Double(report.storedBefore) : 0
            print("rewrote \(report.rewritten) blobs under \(profile.rawValue) in \(String(format: "%.1f", seconds)) s: "
                  + "\(report.storedBefore) -> \(report.storedAfter) bytes stored (\(String(format: "%.1f", saved * 100))% saved)"
                  + (report.keptAsIs > 0 ? "; \(report.keptAsIs) kept as they were" : "")
                  + (report.failed > 0 ? "; \(report.failed) failed (run `cairn verify`), run recompress again once repaired" : ""))
        }
        if report.failed > 0 { throw CommandFailure(status: 1) }
    }
}
