import ArgumentParser
import CairnIngest
import CairnStore
import Foundation

struct ReindexCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reindex",
        abstract: "Read again the headers of instances indexed before DICOMweb (index v9), so searches match and return all their attributes.")

    @OptionGroup var global: GlobalOptions

    @Option(help: "Only this dataset's instances.")
    var dataset: String?

    @OptionGroup var parallel: ParallelOptions

    func run() throws {
        let store = try global.openStore()
        if let dataset, try !store.datasetExists(dataset) { throw StoreError.invalidArgument("dataset '\(dataset)' does not exist") }
        let total = try store.countToReindex(in: dataset)
        let progress = ProgressBar(label: "reindex", totalItems: total, totalBytes: 0)
        let start = ContinuousClock.now
        let report = try DicomWebReindex.run(store: store, dataset: dataset, jobs: parallel.jobs) { progress.update(items: $0, bytes: 0) }
        progress.finish()
        let seconds = (ContinuousClock.now - start) / .seconds(1)
        if global.json {
            Terminal.printJSON(["reindexed": report.reindexed, "unreadable": report.unreadable, "skipped": report.skipped,
                                "seconds": seconds] as [String: Any])
        } else {
            print("reindexed \(report.reindexed) instances in \(String(format: "%.2f", seconds)) s"
                  + (report.unreadable > 0 ? "; \(report.unreadable) no longer parse and keep their older attributes" : "")
                  + (report.skipped > 0 ? "; \(report.skipped) blobs could not be read (run `cairn verify`), run reindex again once repaired" : ""))
        }
        if report.skipped > 0 { throw CommandFailure(status: 1) }
    }
}
