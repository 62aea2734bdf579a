import ArgumentParser
import CairnBlobs
import CairnIngest
import CairnStore
import Foundation

struct IngestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "Store files and folders (recursively) as content-addressed blobs.",
        discussion: "A file is reported stored only once its bytes and link are durable on disk and its index rows are committed.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "Files or folders to ingest.")
    var paths: [String]

    @Option(help: "Dataset to add the files to.")
    var dataset: String = BlobStore.defaultDataset

    @Option(help: ArgumentHelp("archive (smallest), balanced or fast (fastest reads); default: the dataset's profile, else balanced. "
                               + "Native pixel data goes through the profile's pixel stage.", valueName: "profile"))
    var profile: String?

    @Option(help: ArgumentHelp("Plain frames, no pixel stage (for comparison and stock-tool readability): auto (zstd, or raw "
            + "when compression saves under 5%), zstd, lz4 or raw."))
    var codec: String?

    @Option(help: "Compression level with --codec (zstd 1-19, lz4 0-12; default zstd 3, lz4 0).")
    var level: Int?

    @OptionGroup var parallel: ParallelOptions
    var jobs: Int { parallel.jobs }

    @Option(help: "Override the store's frame size (bytes) for these files.")
    var frameSize: Int?

    @Flag(name: .shortAndLong, help: "Print one line per file as soon as it is durable (NDJSON with --json).")
    var verbose = false

    func validate() throws {
        if let codec, CodecChoice(rawValue: codec) == nil {
            throw ValidationError("--codec must be one of auto, zstd, lz4, raw")
        }
        if let profile, StorageProfile(rawValue: profile) == nil {
            throw ValidationError("--profile must be one of archive, balanced, fast")
        }
        if profile != nil && codec != nil { throw ValidationError("--profile and --codec exclude each other") }
        if level != nil && codec == nil { throw ValidationError("--level needs --codec (a profile sets its own levels)") }
        if let level, !(-7...22).contains(level) { throw ValidationError("--level must be between -7 and 22") }
        if let frameSize, !WriteOptions.frameSizes.contains(frameSize) {
            throw ValidationError("--frame-size must be between 4096 and 67108864")
        }
    }

    func run() throws {
        let store = try global.openStore()
        guard try store.datasetExists(dataset) else {
            throw StoreError.invalidArgument("dataset '\(dataset)' does not exist (create it with `cairn dataset create \(dataset)`)")
        }
        let walk = FileWalker(paths: paths)
        for failure in walk.failures { Terminal.error("cannot read \(failure.path): \(failure.reason)") }
        let options: WriteOptions
        if let codec, let choice = CodecChoice(rawValue: codec) {
            options = WriteOptions(codec: choice, level: level, frameSize: frameSize)
        } else {
            let chosen = try profile.flatMap(StorageProfile.init) ?? store.dataset(dataset)?.writeProfile ?? .default
            options = WriteOptions(frameSize: frameSize, profile: chosen)
        }
        let runner = IngestRunner(store: store, options: options, dataset: dataset, jobs: jobs)
        let totalBytes = walk.files.reduce(0) { $0 + $1.size }
        let progress = ProgressBar(label: "ingest", totalItems: walk.files.count, totalBytes: totalBytes,
                                   enabled: Terminal.stderrIsTerminal && !verbose)
        let json = global.json, verbose = verbose
        var summary = runner.run(walk.files) { event, summary in
            switch event {
            case .stored(let file, let result, _):
                if verbose {
                    let status = result.deduplicated ? "dedup" : "stored"
                    if json {
                        Terminal.printJSON(["digest": result.blob.digest.description, "path": file.path, "status": status,
                                            "size": result.blob.size, "stored_size": result.blob.storedSize,
                                            "codec": result.blob.codec.rawValue])
                    } else {
                        print("\(result.blob.digest)\t\(status)\t\(file.path)")
                    }
                    Terminal.flushStdout()
                }
            case .failed(let path, let reason):
                progress.finish()
                Terminal.error("failed \(path): \(reason)")
            case .refused(let path, let reason):
                progress.finish()
                Terminal.error("refused \(path): \(reason)")
            }
            progress.update(items: summary.files, bytes: summary.bytesIn)
        }
        progress.finish()
        summary.failed += walk.failures.count
        if global.json {
            Terminal.printJSON(encodable: summary)
        } else {
            print(Self.summaryLine(summary))
        }
        if summary.failed > 0 || summary.refused > 0 { throw CommandFailure(status: 1, message: nil) }
    }

    static func summaryLine(_ summary: IngestSummary) -> String {
        let seconds = String(format: "%.2f", summary.seconds)
        var line = "ingested \(summary.files) files in \(seconds) s: \(summary.ingested) new, "
        line += "\(summary.deduplicated) deduplicated, \(summary.failed) failed"
        if summary.refused > 0 { line += ", \(summary.refused) refused" }
        line += "; \(summary.instances) DICOM instances; "
        line += "\(Terminal.bytes(summary.bytesIn)) in, \(Terminal.bytes(summary.bytesStored)) stored"
        if summary.deduplicated == 0 && summary.ingested > 0 && summary.bytesStored > 0 {
            let ratio = Double(summary.bytesIn) / Double(summary.bytesStored)
            line += String(format: ", %.2fx smaller", ratio)
        }
        return line + ", " + Terminal.rate(summary.bytesIn, seconds: summary.seconds)
    }
}
