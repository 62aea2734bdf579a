import CairnStore

/// What happened to one file handed to `ingestFile`.
public enum SingleIngestOutcome: Sendable {
    case stored(PutResult, isInstance: Bool)
    /// The dataset's de-identification gate refused it; nothing was stored.
    case refused(reason: String)
}

/// Stores one file through the same steps as `cairn ingest`: DICOM inspection, the dataset's
/// de-identification gate, frames cut at Pixel Data, then the durable write path. Used for uploads.
public func ingestFile(at path: String, into store: BlobStore, dataset: String, name: String? = nil,
                       options: WriteOptions = .init()) throws -> SingleIngestOutcome {
    let inspection = DicomInspection(path: path)
    let policy = try store.dataset(dataset)?.deidPolicy ?? .reject
    if policy == .reject, let reason = inspection.refusal { return .refused(reason: reason) }
    let staged = try store.stage(fileAt: path, options: options, dataset: dataset, name: name, cutPoints: inspection.cutPoints)
    staged.instance = inspection.record
    return .stored(try store.commit(staged), isInstance: inspection.record != nil)
}
