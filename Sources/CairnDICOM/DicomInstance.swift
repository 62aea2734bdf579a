/// What the index keeps about one DICOM instance, and where its pixel data and frames start.
public struct DicomInstance: Sendable, Equatable {
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
    public var rows: Int?
    public var columns: Int?
    public var frames: Int?
    public var transferSyntax: String
    /// File offset of the Pixel Data value, and of each frame (for encapsulated data: of the
    /// item holding the frame's first fragment). Nil/empty when unknown or when the data set was deflated.
    public var pixelDataOffset: UInt64?
    public var frameOffsets: [UInt64]

    public init(file: DicomFile) {
        let ds = file.dataSet
        func text(_ keyword: String) -> String? {
            ds.string(keyword).flatMap { $0.isEmpty ? nil : $0 }
        }
        subject = text("PatientID")
        studyUID = text("StudyInstanceUID")
        seriesUID = text("SeriesInstanceUID")
        sopInstanceUID = text("SOPInstanceUID") ?? file.meta?.string("MediaStorageSOPInstanceUID")
        sopClassUID = text("SOPClassUID") ?? file.meta?.string("MediaStorageSOPClassUID")
        modality = text("Modality")
        bodyPart = text("BodyPartExamined")
        manufacturer = text("Manufacturer")
        sex = text("PatientSex")
        studyDate = text("StudyDate")
        rows = ds.integer("Rows")
        columns = ds.integer("Columns")
        frames = ds.integer("NumberOfFrames") ?? (ds[.pixelData] != nil ? 1 : nil)
        transferSyntax = file.transferSyntax.uid
        pixelDataOffset = nil
        frameOffsets = []
        guard file.offsetsAreFileOffsets, let pixels = ds[.pixelData] else { return }
        pixelDataOffset = UInt64(pixels.valueOffset)
        switch pixels.value {
        case .bulk(let offset, let length):
            let samples = ds.integer("SamplesPerPixel") ?? 1
            let bits = ds.integer("BitsAllocated") ?? 16
            let frameCount = max(1, frames ?? 1)
            if let rows, let columns, bits % 8 == 0 {
                let frameSize = rows * columns * samples * bits / 8
                if frameSize > 0 && frameSize * frameCount <= length {
                    frameOffsets = (0..<frameCount).map { UInt64(offset + $0 * frameSize) }
                }
            }
        case .encapsulated(let encapsulated):
            frameOffsets = Self.encapsulatedFrameStarts(encapsulated, frames: max(1, frames ?? 1),
                                                         extended: ds[.extendedOffsetTable], dataSet: ds)
        default:
            break
        }
    }

    /// Frame starts of encapsulated pixel data (PS3.5 A.4): from the Extended Offset Table, else
    /// the Basic Offset Table, else one fragment per frame when the counts agree.
    static func encapsulatedFrameStarts(_ pixels: EncapsulatedPixelData, frames: Int, extended: DataElement?,
                                        dataSet: DataSet) -> [UInt64] {
        guard let first = pixels.fragments.first else { return [] }
        let byItemOffset = Dictionary(pixels.fragments.map { ($0.itemOffset - first.itemOffset, $0.itemOffset) },
                                      uniquingKeysWith: { a, _ in a })
        if let extended, case .bytes(let bytes) = extended.value, bytes.count == 8 * frames {
            let offsets = (0..<frames).map { i -> Int in
                (0..<8).reduce(0) { $0 | Int(bytes[8 * i + $1]) << (8 * $1) }
            }
            let starts = offsets.compactMap { byItemOffset[$0] }
            if starts.count == frames { return starts.map(UInt64.init) }
        }
        if pixels.basicOffsetTable.count == frames {
            let starts = pixels.basicOffsetTable.compactMap { byItemOffset[Int($0)] }
            if starts.count == frames { return starts.map(UInt64.init) }
        }
        if pixels.fragments.count == frames { return pixels.fragments.map { UInt64($0.itemOffset) } }
        if frames == 1 { return [UInt64(first.itemOffset)] }
        return []
    }

    /// Where the blob writer must start new frames: the Pixel Data value and each image frame.
    public var cutPoints: [UInt64] {
        var points = frameOffsets
        if let pixelDataOffset { points.append(pixelDataOffset) }
        return Array(Set(points)).sorted()
    }
}
