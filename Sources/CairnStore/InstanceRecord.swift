/// The indexed attributes of one DICOM instance, as the ingest layer extracted them; the store
/// keeps them next to the blob and dataset rows, in the same transaction.
public struct InstanceRecord: Sendable, Equatable {
    public var subject: String?
    public var studyUID: String?
    public var seriesUID: String?
    public var sopInstanceUID: String?
    public var sopClassUID: String?
    public var modality: String?
    public var bodyPart: String?
    public var manufacturer: String?
    public var sex: String?
    public var studyDate: String?
    /// PatientAge (0010,1010) in years (days, weeks and months as fractions): the age at the study.
    public var ageYears: Double?
    public var rows: Int?
    public var columns: Int?
    public var frames: Int?
    public var transferSyntax: String?
    public var pixelDataOffset: UInt64?
    public var frameOffsets: [UInt64]
    /// Bytes per native frame (the frame at `frameOffsets[i]` is this long); nil when encapsulated.
    public var frameLength: Int?
    /// QIDO-RS matching keys the attributes above do not cover.
    public var patientName: String?
    public var accessionNumber: String?
    public var studyID: String?
    public var studyTime: String?
    public var referringPhysician: String?
    public var studyDescription: String?
    public var seriesNumber: Int?
    public var instanceNumber: Int?
    /// The DICOM JSON members (`"tag":{…},…`) of what QIDO-RS returns at each level, so a search
    /// never opens a blob.
    public var studyAttributes: String?
    public var seriesAttributes: String?
    public var instanceAttributes: String?

    public init(subject: String? = nil, studyUID: String? = nil, seriesUID: String? = nil, sopInstanceUID: String? = nil,
                sopClassUID: String? = nil, modality: String? = nil, bodyPart: String? = nil, manufacturer: String? = nil,
                sex: String? = nil, studyDate: String? = nil, ageYears: Double? = nil, rows: Int? = nil, columns: Int? = nil, frames: Int? = nil,
                transferSyntax: String? = nil, pixelDataOffset: UInt64? = nil, frameOffsets: [UInt64] = []) {
        self.subject = subject
        self.studyUID = studyUID
        self.seriesUID = seriesUID
        self.sopInstanceUID = sopInstanceUID
        self.sopClassUID = sopClassUID
        self.modality = modality
        self.bodyPart = bodyPart
        self.manufacturer = manufacturer
        self.sex = sex
        self.studyDate = studyDate
        self.ageYears = ageYears
        self.rows = rows
        self.columns = columns
        self.frames = frames
        self.transferSyntax = transferSyntax
        self.pixelDataOffset = pixelDataOffset
        self.frameOffsets = frameOffsets
    }
}
