import CairnDICOM
import CairnStore
import Synchronization

/// `cairn reindex`: fills in what index v9 keeps for DICOMweb (the QIDO-RS matching keys and
/// returned attributes, native frame lengths) for instances indexed before it, by reading each
/// instance's header again from its blob.
public enum DicomWebReindex {
    public struct Report: Sendable {
        public var reindexed = 0
        /// Files that no longer parse; their rows keep answering from the older columns.
        public var unreadable = 0
    }

    /// Works through the rows a batch at a time (one transaction a batch), parsing on `jobs`
    /// threads; `progress` gets the running count.
    public static func run(store: BlobStore, dataset: String?, jobs: Int, batch: Int = 512,
                           progress: (Int) -> Void) throws -> Report {
        var report = Report()
        while true {
            let rows = try store.rowsToReindex(in: dataset, limit: batch)
            if rows.isEmpty { return report }
            let results = Mutex([InstanceRecord?](repeating: nil, count: rows.count))
            WorkerPool.forEach(count: rows.count, jobs: jobs) { index in
                let record: InstanceRecord? = {
                    guard let file = try? store.reader(for: rows[index].blob).parseDicom() else { return nil }
                    return InstanceRecord(file: file, layout: PixelDataLayout(file: file))
                }()
                results.withLock { $0[index] = record }
            }
            let records = results.withLock { $0 }
            try store.storeReindexed(zip(rows, records).map { (dataset: $0.dataset, digest: $0.blob.digest, record: $1) })
            report.reindexed += records.count { $0 != nil }
            report.unreadable += records.count { $0 == nil }
            progress(report.reindexed + report.unreadable)
        }
    }
}
