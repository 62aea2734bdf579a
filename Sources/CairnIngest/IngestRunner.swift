import CairnStore
import Foundation
import Synchronization

/// Counters of one ingest run; also its `--json` output.
public struct IngestSummary: Sendable, Codable {
    public var files = 0
    public var ingested = 0
    public var deduplicated = 0
    public var failed = 0
    public var bytesIn: UInt64 = 0
    public var bytesStored: UInt64 = 0
    public var seconds = 0.0

    enum CodingKeys: String, CodingKey {
        case files, ingested, deduplicated, failed, seconds
        case bytesIn = "bytes_in"
        case bytesStored = "bytes_stored"
    }
}

/// What happened to one file, reported as soon as it is durable (or has failed).
public enum IngestEvent: Sendable {
    case stored(FoundFile, PutResult)
    case failed(path: String, reason: String)
}

/// Stores many files with `jobs` worker threads. Each file is one `BlobStore.put`: when an event
/// says `stored`, the blob is fsynced and its index rows committed.
public struct IngestRunner: Sendable {
    public var store: BlobStore
    public var options: WriteOptions
    public var dataset: String
    public var jobs: Int

    public init(store: BlobStore, options: WriteOptions, dataset: String, jobs: Int) {
        self.store = store
        self.options = options
        self.dataset = dataset
        self.jobs = max(1, jobs)
    }

    /// Ingests `files`; `onEvent` is called once per file, serialised, with the running summary.
    public func run(_ files: [FoundFile], onEvent: @escaping @Sendable (IngestEvent, IngestSummary) -> Void) -> IngestSummary {
        let start = Date()
        let state = Mutex(IngestSummary())
        let store = store, options = options, dataset = dataset
        WorkerPool.forEach(count: files.count, jobs: jobs) { index in
            let file = files[index]
            let event: IngestEvent
            do {
                let result = try store.put(fileAt: file.path, options: options, dataset: dataset, name: file.name)
                event = .stored(file, result)
            } catch {
                event = .failed(path: file.path, reason: "\(error)")
            }
            state.withLock { summary in
                summary.files += 1
                switch event {
                case .stored(_, let result):
                    summary.bytesIn += result.blob.size
                    if result.deduplicated {
                        summary.deduplicated += 1
                    } else {
                        summary.ingested += 1
                        summary.bytesStored += result.blob.storedSize
                    }
                case .failed:
                    summary.failed += 1
                }
                summary.seconds = Date().timeIntervalSince(start)
                onEvent(event, summary)
            }
        }
        var summary = state.withLock { $0 }
        summary.seconds = Date().timeIntervalSince(start)
        return summary
    }
}
