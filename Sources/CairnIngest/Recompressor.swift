import CairnBlobs
import CairnDICOM
import CairnStore
import Synchronization

/// `cairn recompress`: rewrites stored blobs under a storage profile, DICOM instances with their
/// frames cut and their native pixel data through the profile's pixel stage, exactly as ingest
/// would write them today. Resumable: blobs already under the profile are skipped.
public enum Recompressor {
    public struct Report: Sendable {
        public var rewritten = 0
        /// Blobs the profile would store raw: left as they were.
        public var keptAsIs = 0
        /// Blobs that could not be read or rewritten (missing, damaged): left as they were.
        public var failed = 0
        public var storedBefore: UInt64 = 0
        public var storedAfter: UInt64 = 0
        public var failures: [String] = []
    }

    private enum Outcome {
        case done(RewriteOutcome)
        case failed(String)
    }

    public static func run(store: BlobStore, profile: StorageProfile, dataset: String?, jobs: Int, batch: Int = 256,
                           progress: (Int, UInt64) -> Void) throws -> Report {
        var report = Report()
        var cursor = ""
        var bytesIn: UInt64 = 0
        while true {
            let records = try store.blobsToRecompress(profile: profile, dataset: dataset, after: cursor, limit: batch)
            guard let last = records.last else { return report }
            cursor = last.digest.hex
            let results = Mutex([Outcome](repeating: .failed("not run"), count: records.count))
            WorkerPool.forEach(count: records.count, jobs: jobs) { index in
                let outcome: Outcome
                do {
                    outcome = .done(try rewrite(records[index], in: store, profile: profile))
                } catch {
                    outcome = .failed("\(records[index].digest): \(error)")
                }
                results.withLock { $0[index] = outcome }
            }
            for (record, outcome) in zip(records, results.withLock { $0 }) {
                bytesIn += record.size
                switch outcome {
                case .done(.rewritten(let before, let after)):
                    report.rewritten += 1
                    report.storedBefore += before
                    report.storedAfter += after.storedSize
                case .done(.keptAsIs), .done(.gone):
                    report.keptAsIs += 1
                case .failed(let reason):
                    report.failed += 1
                    if report.failures.count < 100 { report.failures.append(reason) }
                }
            }
            progress(report.rewritten + report.keptAsIs + report.failed, bytesIn)
        }
    }

    /// Rewrites with the frame layout ingest would give the blob's bytes (DICOM cut points, native
    /// pixel data), read from the blob with the reader that then streams it.
    static func rewrite(_ record: BlobRecord, in store: BlobStore, profile: StorageProfile) throws -> RewriteOutcome {
        let source = try store.reader(for: record)
        let layout = (try? source.parseDicom()).map(PixelDataLayout.init(file:))
        return try store.rewrite(record, from: source, profile: profile, cutPoints: layout?.cutPoints ?? [],
                                 pixels: layout?.pixelRegion)
    }
}
