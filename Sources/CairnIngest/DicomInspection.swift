import Foundation
import CairnBlobs
import CairnDICOM
import CairnStore
import Glibc

/// What ingest learns from a file before storing it: whether it is a DICOM instance, its indexed
/// attributes and frame boundaries, and what the de-identification gate concluded.
struct DicomInspection {
    /// The attributes to index, when the file is a DICOM instance.
    var record: InstanceRecord?
    /// Where the blob writer must start new frames: the Pixel Data value and each image frame.
    var cutPoints: [UInt64] = []
    /// Native pixel data, for the pixel stage of the write's profile.
    var pixels: PixelRegion?
    var verdict: GateVerdict

    /// Inspects the file for `gate`: a gated dataset's files go through the verifier; an ungated
    /// dataset's are only parsed (its verdict is never asked for).
    init(path: String, gate: DatasetGate) {
        let inspection = gate.deidPolicy == .reject
            ? DeidentificationGate.inspect(path: path, policy: gate.deidentification)
            : GateInspection(file: try? DicomParser().parse(path: path), verdict: .clean)
        verdict = inspection.verdict
        if let file = inspection.file {
            let layout = PixelDataLayout(file: file)
            record = InstanceRecord(file: file, layout: layout)
            cutPoints = layout.cutPoints
            pixels = layout.pixelRegion
        }
    }

    /// Why the dataset's gate refuses the file (nil: it may be stored). Only `reject` datasets are gated.
    func refusal(under gate: DatasetGate) -> String? {
        gate.deidPolicy == .reject ? verdict.refusal(allowNonDicom: gate.allowNonDicom) : nil
    }

    /// Inspects, applies the dataset's gate and stages the file with its frames cut and its
    /// attributes attached: the part of ingest that `cairn ingest` and uploads share. Returns the
    /// gate's reason instead when it refuses the file. `admit` sees what the inspection found (nil:
    /// not a DICOM instance) before the gate does, and throws to refuse the file for the caller's
    /// own reasons (STOW-RS: the wrong study, another file under a held SOP Instance UID).
    static func stage(_ path: String, into store: BlobStore, dataset: String, gate: DatasetGate,
                      name: String?, options: WriteOptions,
                      admit: (InstanceRecord?) throws -> Void = { _ in }) throws -> Result<StagedBlob, Refusal> {
        let inspection = DicomInspection(path: path, gate: gate)
        try admit(inspection.record)
        if let reason = inspection.refusal(under: gate) ?? inspection.record.flatMap(\.indexProblem) {
            return .failure(Refusal(reason: reason))
        }
        let staged = try store.stage(fileAt: path, options: options, dataset: dataset, name: name,
                                     cutPoints: inspection.cutPoints, pixels: inspection.pixels)
        staged.instance = inspection.record
        return .success(staged)
    }

    struct Refusal: Error {
        let reason: String
    }
}

extension PixelDataLayout {
    /// Where the write's pixel stage applies: the native pixel data, when its samples are ones it transforms.
    var pixelRegion: PixelRegion? { native.flatMap(PixelRegion.init(native:)) }
}

extension PixelRegion {
    /// The pixel stage's view of native pixel data; nil for sample sizes it does not transform.
    init?(native: PixelDataLayout.NativePixels) {
        guard native.bitsAllocated % 8 == 0,
              let geometry = PixelGeometry(bytesPerSample: native.bitsAllocated / 8,
                                           samplesPerPixel: native.isPlanar ? 1 : native.samplesPerPixel,
                                           columns: native.columns, isSigned: native.isSigned)
        else { return nil }
        self.init(range: native.range, geometry: geometry)
    }
}

extension InstanceRecord {
    /// Why the index must not take these attributes, in any dataset: UIDs that are not UIDs
    /// (PS3.5 9.1; DICOMweb builds URLs from them) and text holding a NUL (cut short by C code
    /// downstream). Nil when they are fine.
    public var indexProblem: String? {
        for (name, uid) in [("Study Instance UID", studyUID), ("Series Instance UID", seriesUID),
                            ("SOP Instance UID", sopInstanceUID), ("SOP Class UID", sopClassUID)] {
            if let uid, !Self.isUID(uid) { return "has a \(name) that is not a UID (PS3.5 9.1: digits and dots, at most 64)" }
        }
        for (name, text) in [("Patient ID", subject), ("Modality", modality), ("Body Part Examined", bodyPart),
                             ("Manufacturer", manufacturer), ("Patient's Sex", sex)] where text?.contains("\0") == true {
            return "has a NUL character in its \(name)"
        }
        return nil
    }

    /// PS3.5 9.1: components of digits separated by dots, 64 characters at most. (A leading zero
    /// in a component, invalid too but common in old exports, is let through: it changes no URL.)
    static func isUID(_ text: String) -> Bool {
        text.utf8.count <= 64 && text.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { part in
            !part.isEmpty && part.utf8.allSatisfy { (0x30...0x39).contains($0) }
        }
    }

    /// The attributes the index keeps for a DICOM instance (empty values count as absent).
    public init(file: DicomFile, layout: PixelDataLayout) {
        let ds = file.dataSet
        func text(_ keyword: String) -> String? { ds.string(keyword).flatMap { $0.isEmpty ? nil : $0 } }
        self.init(subject: text("PatientID"), studyUID: text("StudyInstanceUID"), seriesUID: text("SeriesInstanceUID"),
                  sopInstanceUID: text("SOPInstanceUID") ?? file.meta?.string("MediaStorageSOPInstanceUID"),
                  sopClassUID: text("SOPClassUID") ?? file.meta?.string("MediaStorageSOPClassUID"),
                  modality: text("Modality"), bodyPart: text("BodyPartExamined"), manufacturer: text("Manufacturer"),
                  sex: text("PatientSex"), studyDate: text("StudyDate"), ageYears: text("PatientAge").flatMap(Self.years),
                  rows: ds.integer("Rows"),
                  columns: ds.integer("Columns"), frames: layout.frames, transferSyntax: file.transferSyntax.uid,
                  pixelDataOffset: layout.pixelDataOffset, frameOffsets: layout.frameOffsets)
        frameLength = layout.frameLength
        patientName = text("PatientName")
        accessionNumber = text("AccessionNumber")
        studyID = text("StudyID")
        studyTime = text("StudyTime")
        referringPhysician = text("ReferringPhysicianName")
        studyDescription = text("StudyDescription").map { String($0.prefix(1024)) }
        seriesNumber = ds.integer("SeriesNumber")
        instanceNumber = ds.integer("InstanceNumber")
        func attributes(_ level: QueryLevel) -> String? {
            let members = QueryAttributes.members(of: ds, at: level)
            return members.isEmpty ? nil : members
        }
        studyAttributes = attributes(.study)
        seriesAttributes = attributes(.series)
        instanceAttributes = attributes(.instance)
    }

    /// An Age String (PS3.5 6.2, VR AS: `nnnD`, `nnnW`, `nnnM` or `nnnY`) in years; nil when malformed.
    static func years(_ text: String) -> Double? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard trimmed.utf8.count == 4, let unit = trimmed.last, let count = Int(trimmed.dropLast()), count >= 0 else { return nil }
        switch unit {
        case "Y", "y": return Double(count)
        case "M", "m": return Double(count) / 12
        case "W", "w": return Double(count) * 7 / 365.25
        case "D", "d": return Double(count) / 365.25
        default: return nil
        }
    }
}
