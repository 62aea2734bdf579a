import CairnBlobs
import CairnStore

/// What happened to one file handed to `ingestFile`.
public enum SingleIngestOutcome: Sendable {
    case stored(PutResult, isInstance: Bool)
    /// The dataset's de-identification gate refused it; nothing was stored.
    case refused(reason: String)
}

/// Stores one file through the same steps as `cairn ingest`: DICOM inspection, the dataset's
/// de-identification gate, frames cut at Pixel Data, then the durable write path. Used for uploads
/// and STOW-RS, whose `admit` refuses (by throwing) what the inspection shows it must not store.
public func ingestFile(at path: String, into store: BlobStore, dataset: String, name: String? = nil,
                       options: WriteOptions = .init(), admit: (InstanceRecord?) throws -> Void = { _ in }) throws -> SingleIngestOutcome {
    guard let info = try store.dataset(dataset) else { throw StoreError.invalidArgument("dataset '\(dataset)' does not exist") }
    var options = options
    if options.codec == .auto && options.profile == nil { options.profile = info.writeProfile }
    let gate = try DatasetGate.load(dataset: dataset, from: store) ?? .closed
    switch try DicomInspection.stage(path, into: store, dataset: dataset, gate: gate, name: name, options: options,
                                     admit: admit) {
    case .failure(let refusal): return .refused(reason: refusal.reason)
    case .success(let staged):
        // `deduplicated` says only whether this dataset held the bytes already: that another
        // dataset holds them is not the uploader's to learn (the write does the same work either way).
        let member = try store.record(staged.blob.digest, inAnyOf: [dataset]) != nil
        var put = try store.commit(staged)
        put.deduplicated = put.deduplicated && member
        return .stored(put, isInstance: staged.instance != nil)
    }
}
