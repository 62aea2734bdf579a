import CairnDICOM
import CairnStore
import Foundation
import Synchronization

/// Counters of one ingest run; also its `--json` output.
public struct IngestSummary: Sendable, Codable {
    public var files = 0
    public var ingested = 0
    public var deduplicated = 0
    public var failed = 0
    /// Refused by the de-identification gate (counted apart from failures).
    public var refused = 0
    /// Stored files that were DICOM instances (indexed with their attributes).
    public var instances = 0
    public var bytesIn: UInt64 = 0
    public var bytesStored: UInt64 = 0
    public var seconds = 0.0

    enum CodingKeys: String, CodingKey {
        case files, ingested, deduplicated, failed, refused, instances, seconds
        case bytesIn = "bytes_in"
        case bytesStored = "bytes_stored"
    }
}

/// What happened to one file, reported as soon as it is durable (or has failed).
public enum IngestEvent: Sendable {
    case stored(FoundFile, PutResult, isInstance: Bool)
    case failed(path: String, reason: String)
    /// The de-identification gate kept the file out; `reason` names the attributes.
    case refused(path: String, reason: String)
}

/// Stores many files as a two-stage pipeline: `jobs` threads parse, hash and compress into
/// `tmp/` (CPU), while one committer thread group-commits what they staged (I/O waits), so the
/// compressors never sit idle on a disk flush. A file's `stored` event comes from the committer,
/// after its transaction: it is durable when reported.
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

    private enum Staged: Sendable {
        case ready(FoundFile, StagedBlob)
        case failed(path: String, reason: String)
        case refused(path: String, reason: String)
    }

    /// Ingests `files`; `onEvent` is called once per file, serialised, with the running summary.
    public func run(_ files: [FoundFile], onEvent: @escaping @Sendable (IngestEvent, IngestSummary) -> Void) -> IngestSummary {
        let start = Date()
        let state = Mutex(IngestSummary())
        let store = store, options = options, dataset = dataset
        // Bounded, so at most this many staged temp files (open descriptors) wait for the committer.
        let queue = BlockingQueue<Staged>(capacity: 256)
        let report: @Sendable (IngestEvent) -> Void = { event in
            state.withLock { summary in
                summary.files += 1
                switch event {
                case .stored(_, let result, let isInstance):
                    summary.bytesIn += result.blob.size
                    if isInstance { summary.instances += 1 }
                    if result.deduplicated {
                        summary.deduplicated += 1
                    } else {
                        summary.ingested += 1
                        summary.bytesStored += result.blob.storedSize
                    }
                case .failed:
                    summary.failed += 1
                case .refused:
                    summary.refused += 1
                }
                summary.seconds = Date().timeIntervalSince(start)
                onEvent(event, summary)
            }
        }
        let committed = DispatchSemaphore(value: 0)
        // One committer: whatever the compressors staged while it waited on the last flush forms the
        // next group commit, so a slow disk makes batches larger instead of stalling the compressors.
        let committers = Thread {
            while true {
                let items = queue.takeBatch(limit: 256)
                if items.isEmpty { break }
                var staged: [(FoundFile, StagedBlob)] = []
                for item in items {
                    switch item {
                    case .ready(let file, let blob): staged.append((file, blob))
                    case .failed(let path, let reason): report(.failed(path: path, reason: reason))
                    case .refused(let path, let reason): report(.refused(path: path, reason: reason))
                    }
                }
                if staged.isEmpty { continue }
                let results = store.commit(staged.map(\.1))
                for ((file, blob), result) in zip(staged, results) {
                    switch result {
                    case .success(let put): report(.stored(file, put, isInstance: blob.instance != nil))
                    case .failure(let error): report(.failed(path: file.path, reason: "\(error)"))
                    }
                }
            }
            committed.signal()
        }
        committers.start()
        // A dataset that cannot be read is gated as tightly as any.
        let gate = ((try? DatasetGate.load(dataset: dataset, from: store)) ?? nil) ?? .closed
        WorkerPool.forEach(count: files.count, jobs: jobs) { index in
            let file = files[index]
            do {
                switch try DicomInspection.stage(file.path, into: store, dataset: dataset, gate: gate, name: file.name,
                                                 options: options) {
                case .failure(let refusal): queue.put(.refused(path: file.path, reason: refusal.reason))
                case .success(let staged): queue.put(.ready(file, staged))
                }
            } catch {
                queue.put(.failed(path: file.path, reason: "\(error)"))
            }
        }
        queue.close()
        committed.wait()
        var summary = state.withLock { $0 }
        summary.seconds = Date().timeIntervalSince(start)
        return summary
    }
}
