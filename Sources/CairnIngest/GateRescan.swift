import CairnDICOM
import CairnStore
import Foundation
import Synchronization

/// Re-judges what a dataset holds under its gate's current rules: each member blob is decoded
/// (every frame checked against its checksum) into a spool file and inspected as ingest inspects
/// an upload. Providers run it after upgrading Cairn or tightening a dataset's policy.
public enum GateRescan {
    /// A stored file the gate would now refuse.
    public struct Refusal: Sendable {
        public var digest: BlobDigest
        public var name: String?
        public var reason: String
    }

    public struct Report: Sendable {
        public var checked = 0
        public var refused: [Refusal] = []
        /// Blobs that could not be read (missing, damaged): not judged, reported as they are.
        public var unreadable: [(digest: BlobDigest, reason: String)] = []
    }

    /// The verdict on every member of `dataset`, `jobs` at a time; `progress` sees each count checked.
    public static func run(store: BlobStore, dataset: String, jobs: Int,
                           progress: @escaping @Sendable (Int) -> Void = { _ in }) throws -> Report {
        guard let gate = try DatasetGate.load(dataset: dataset, from: store) else {
            throw StoreError.invalidArgument("dataset '\(dataset)' does not exist")
        }
        var listed: [ListedBlob] = []
        var after: BlobDigest?
        while true {
            let page = try store.list(dataset: dataset, after: after, limit: 1000)
            guard let last = page.last else { break }
            listed += page
            after = last.record.digest
        }
        let members = listed
        let report = Mutex(Report())
        WorkerPool.forEach(count: members.count, jobs: jobs) { index in
            let member = members[index]
            let outcome: Result<String?, Error> = Result { try refusal(of: member.record.digest, in: store, gate: gate) }
            let checked = report.withLock { report in
                report.checked += 1
                switch outcome {
                case .success(let reason?): report.refused.append(Refusal(digest: member.record.digest, name: member.name, reason: reason))
                case .success(nil): break
                case .failure(let error): report.unreadable.append((member.record.digest, "\(error)"))
                }
                return report.checked
            }
            progress(checked)
        }
        var result = report.withLock { $0 }
        result.refused.sort { $0.digest < $1.digest }
        result.unreadable.sort { $0.digest < $1.digest }
        return result
    }

    /// Why the gate refuses the stored file now (nil: it passes, or the dataset is not gated).
    public static func refusal(of digest: BlobDigest, in store: BlobStore, gate: DatasetGate) throws -> String? {
        guard gate.deidPolicy == .reject else { return nil }
        return try inspect(digest, in: store, policy: gate.deidentification).verdict.refusal(allowNonDicom: gate.allowNonDicom)
    }

    /// The instance attributes of a stored file, read again from its blob (for `gate release`).
    public static func instanceRecord(of digest: BlobDigest, in store: BlobStore) throws -> InstanceRecord? {
        guard let file = try inspect(digest, in: store, policy: .strict).file else { return nil }
        return InstanceRecord(file: file, layout: PixelDataLayout(file: file))
    }

    static func inspect(_ digest: BlobDigest, in store: BlobStore, policy: DeidentificationPolicy) throws -> GateInspection {
        let reader = try store.reader(digest)
        let spool = try store.makeSpool()
        try reader.read(0..<reader.size) { try spool.append($0) }
        return DeidentificationGate.inspect(path: spool.path, policy: policy)
    }
}
