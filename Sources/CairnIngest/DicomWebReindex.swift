import CairnDICOM
import CairnStore
import Synchronization

/// `cairn reindex`: fills in what index v9 keeps for DICOMweb (the QIDO-RS matching keys and
/// returned attributes, native frame lengths) for instances indexed before it, by reading each
/// instance's header again from its blob.
public enum DicomWebReindex {
    public struct Report: Sendable {
        public var reindexed = 0
        /// Files that no longer parse as DICOM; their rows keep answering from the older columns.
        public var unreadable = 0
        /// Rows whose blob could not be read (missing, damaged, an I/O error): left as they were,
        /// to be reindexed once the blob is repaired.
        public var skipped = 0
    }

    private enum Outcome {
        case record(InstanceRecord)
        case notDicom
        case blobUnreadable
    }

    /// Works through the rows in key order a batch at a time (one transaction a batch), parsing
    /// on `jobs` threads; `progress` gets the running count.
    public static func run(store: BlobStore, dataset: String?, jobs: Int, batch: Int = 512,
                           progress: (Int) -> Void) throws -> Report {
        var report = Report()
        var cursor = ("", "")
        while true {
            let rows = try store.rowsToReindex(in: dataset, after: cursor, limit: batch)
            guard let last = rows.last else { return report }
            cursor = (last.dataset, last.blob.digest.hex)
            let results = Mutex([Outcome](repeating: .blobUnreadable, count: rows.count))
            WorkerPool.forEach(count: rows.count, jobs: jobs) { index in
                let outcome: Outcome
                do {
                    let reader = try store.reader(for: rows[index].blob)
                    do {
                        let file = try reader.parseDicom()
                        outcome = .record(InstanceRecord(file: file, layout: PixelDataLayout(file: file)))
                    } catch is DicomError {
                        outcome = .notDicom
                    }
                } catch {
                    outcome = .blobUnreadable
                }
                results.withLock { $0[index] = outcome }
            }
            let outcomes = results.withLock { $0 }
            var writes: [(dataset: String, digest: BlobDigest, record: InstanceRecord?)] = []
            for (row, outcome) in zip(rows, outcomes) {
                switch outcome {
                case .record(let record):
                    writes.append((row.dataset, row.blob.digest, record))
                    report.reindexed += 1
                case .notDicom:
                    writes.append((row.dataset, row.blob.digest, nil))
                    report.unreadable += 1
                case .blobUnreadable:
                    report.skipped += 1
                }
            }
            try store.storeReindexed(writes)
            progress(report.reindexed + report.unreadable + report.skipped)
        }
    }
}
