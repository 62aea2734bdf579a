/// The levels of the DICOM information model that QIDO-RS searches (PS3.18 10.6).
public enum QueryLevel: String, Sendable, CaseIterable {
    case study, series, instance
}

/// The attributes the index keeps per instance to answer QIDO-RS without reading blobs: those
/// PS3.18 Tables 10.6.3-3 to -5 require in responses at each level, plus a few that searches and
/// viewers commonly ask for. Attributes the origin computes (counts, ModalitiesInStudy,
/// RetrieveURL, InstanceAvailability) are not here: the query answers them from the index.
public enum QueryAttributes {
    public static let study: [DicomTag] = [
        DicomTag(0x0008, 0x0005), // SpecificCharacterSet
        DicomTag(0x0008, 0x0020), // StudyDate
        DicomTag(0x0008, 0x0030), // StudyTime
        DicomTag(0x0008, 0x0050), // AccessionNumber
        DicomTag(0x0008, 0x0090), // ReferringPhysicianName
        DicomTag(0x0008, 0x0201), // TimezoneOffsetFromUTC
        DicomTag(0x0008, 0x1030), // StudyDescription
        DicomTag(0x0010, 0x0010), // PatientName
        DicomTag(0x0010, 0x0020), // PatientID
        DicomTag(0x0010, 0x0030), // PatientBirthDate
        DicomTag(0x0010, 0x0040), // PatientSex
        DicomTag(0x0020, 0x000D), // StudyInstanceUID
        DicomTag(0x0020, 0x0010), // StudyID
    ]
    public static let series: [DicomTag] = [
        DicomTag(0x0008, 0x0060), // Modality
        DicomTag(0x0008, 0x103E), // SeriesDescription
        DicomTag(0x0018, 0x0015), // BodyPartExamined
        DicomTag(0x0020, 0x000E), // SeriesInstanceUID
        DicomTag(0x0020, 0x0011), // SeriesNumber
        DicomTag(0x0040, 0x0244), // PerformedProcedureStepStartDate
        DicomTag(0x0040, 0x0245), // PerformedProcedureStepStartTime
    ]
    public static let instance: [DicomTag] = [
        DicomTag(0x0008, 0x0016), // SOPClassUID
        DicomTag(0x0008, 0x0018), // SOPInstanceUID
        DicomTag(0x0020, 0x0013), // InstanceNumber
        DicomTag(0x0028, 0x0008), // NumberOfFrames
        DicomTag(0x0028, 0x0010), // Rows
        DicomTag(0x0028, 0x0011), // Columns
        DicomTag(0x0028, 0x0100), // BitsAllocated
    ]

    public static func tags(at level: QueryLevel) -> [DicomTag] {
        switch level {
        case .study: study
        case .series: series
        case .instance: instance
        }
    }

    /// The DICOM JSON members (`"tag":{…},…`) of the data set's attributes at `level`; empty when it has none.
    public static func members(of dataSet: DataSet, at level: QueryLevel) -> String {
        let wanted = Set(tags(at: level))
        var subset = dataSet
        // Values longer than any of these attributes may be (1,024 bytes: LO is 64 characters,
        // LT/UT descriptions are not indexed) are left out, so a hostile file cannot swell the index.
        subset.elements = dataSet.elements.filter { element in
            guard wanted.contains(element.tag), case .bytes(let bytes) = element.value else { return false }
            return bytes.count <= 1024
        }
        return DicomJSON.members(subset)
    }
}
