import CairnDICOM
import CairnStore
import Glibc

/// What ingest learns from a file before storing it: whether it is a DICOM instance, its indexed
/// attributes and frame boundaries, and whether the de-identification gate lets it in.
struct DicomInspection {
    /// The attributes to index, when the file is a DICOM instance.
    var record: InstanceRecord?
    /// Where the blob writer must start new frames: the Pixel Data value and each image frame.
    var cutPoints: [UInt64] = []
    /// Why a gated dataset must refuse the file (nil: it may be stored).
    var refusal: String?

    init(path: String) {
        do {
            let file = try DicomParser().parse(path: path)
            let layout = PixelDataLayout(file: file)
            record = InstanceRecord(file: file, layout: layout)
            cutPoints = layout.cutPoints
            let identifiers = Deidentification.violations(file)
            if !identifiers.isEmpty {
                refusal = "carries direct identifiers (\(identifiers.joined(separator: ", "))) and does not declare "
                    + "PatientIdentityRemoved=YES"
            }
        } catch {
            // Not DICOM at all is fine (any file is accepted); a file that says DICM but cannot be
            // parsed cannot be checked, so a gated dataset refuses it.
            if Self.hasDicomPrefix(path) { refusal = "cannot be checked for identifiers: \(error)" }
        }
    }

    /// Inspects, applies the dataset's gate and stages the file with its frames cut and its
    /// attributes attached: the part of ingest that `cairn ingest` and uploads share. Returns the
    /// gate's reason instead when it refuses the file.
    static func stage(_ path: String, into store: BlobStore, dataset: String, policy: DatasetInfo.DeidPolicy,
                      name: String?, options: WriteOptions) throws -> Result<StagedBlob, Refusal> {
        let inspection = DicomInspection(path: path)
        if policy == .reject, let reason = inspection.refusal { return .failure(Refusal(reason: reason)) }
        let staged = try store.stage(fileAt: path, options: options, dataset: dataset, name: name,
                                     cutPoints: inspection.cutPoints)
        staged.instance = inspection.record
        return .success(staged)
    }

    struct Refusal: Error {
        let reason: String
    }

    static func hasDicomPrefix(_ path: String) -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 4)
        let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 4, 128) }
        return n == 4 && bytes == Array("DICM".utf8)
    }
}

extension InstanceRecord {
    /// The attributes the index keeps for a DICOM instance (empty values count as absent).
    public init(file: DicomFile, layout: PixelDataLayout) {
        let ds = file.dataSet
        func text(_ keyword: String) -> String? { ds.string(keyword).flatMap { $0.isEmpty ? nil : $0 } }
        self.init(subject: text("PatientID"), studyUID: text("StudyInstanceUID"), seriesUID: text("SeriesInstanceUID"),
                  sopInstanceUID: text("SOPInstanceUID") ?? file.meta?.string("MediaStorageSOPInstanceUID"),
                  sopClassUID: text("SOPClassUID") ?? file.meta?.string("MediaStorageSOPClassUID"),
                  modality: text("Modality"), bodyPart: text("BodyPartExamined"), manufacturer: text("Manufacturer"),
                  sex: text("PatientSex"), studyDate: text("StudyDate"), rows: ds.integer("Rows"),
                  columns: ds.integer("Columns"), frames: layout.frames, transferSyntax: file.transferSyntax.uid,
                  pixelDataOffset: layout.pixelDataOffset, frameOffsets: layout.frameOffsets)
    }
}
