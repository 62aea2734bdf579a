import CairnDICOM
import CairnStore
import Glibc

/// What ingest learns from a file before storing it: whether it is a DICOM instance, its indexed
/// attributes and frame boundaries, and whether the de-identification gate lets it in.
struct DicomInspection {
    var instance: DicomInstance?
    /// Why a gated dataset must refuse the file (nil: it may be stored).
    var refusal: String?

    init(path: String) {
        do {
            let file = try DicomParser().parse(path: path)
            let found = DicomInstance(file: file)
            instance = found
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

    var record: InstanceRecord? {
        guard let i = instance else { return nil }
        return InstanceRecord(subject: i.subject, studyUID: i.studyUID, seriesUID: i.seriesUID, sopInstanceUID: i.sopInstanceUID,
                              sopClassUID: i.sopClassUID, modality: i.modality, bodyPart: i.bodyPart,
                              manufacturer: i.manufacturer, sex: i.sex, studyDate: i.studyDate, rows: i.rows,
                              columns: i.columns, frames: i.frames, transferSyntax: i.transferSyntax,
                              pixelDataOffset: i.pixelDataOffset, frameOffsets: i.frameOffsets)
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
