/// Values of kept text attributes that need no review: terms of the closed vocabularies PS3.3
/// enumerates for the attribute, which cannot spell a name or carry free text. Everything else a
/// file keeps as text is judged against the dataset's reviewed values.
enum KeptTextVocabulary {
    static func holds(_ tag: DicomTag, _ value: String) -> Bool {
        switch tag {
        case .specificCharacterSet: return CharacterSetDecoder.isDefinedTerm(value)
        case patientOrientation:
            // Direction letters, one per axis (C.7.6.1.1.1): L R A P H F.
            return value.count <= 3 && value.allSatisfy { "LRAPHF".contains($0) }
        case codeValue:
            // The de-identification method codes of CID 7050 (113100, the Basic Profile, and its options).
            return value == "113100" || DeidentificationOption(code: value) != nil
        default: return terms[tag]?.contains(value) ?? false
        }
    }

    static let patientOrientation = DicomTag(0x0020, 0x0020)
    static let codeValue = DicomTag(0x0008, 0x0100)

    static let terms: [DicomTag: Set<String>] = [
        // Patient Identity Removed, Burned In Annotation, Recognizable Visual Features.
        DicomTag(0x0012, 0x0062): ["YES", "NO"],
        DicomTag(0x0028, 0x0301): ["YES", "NO"],
        DicomTag(0x0028, 0x0302): ["YES", "NO"],
        // Lossy Image Compression (C.7.6.1.1.5).
        DicomTag(0x0028, 0x2110): ["00", "01"],
        // Patient's Sex (C.7.1.1).
        DicomTag(0x0010, 0x0040): ["M", "F", "O"],
        // Laterality, Image Laterality.
        DicomTag(0x0020, 0x0060): ["R", "L"],
        DicomTag(0x0020, 0x0062): ["R", "L", "U", "B"],
        // Image Type values 1 and 2 (C.7.6.1.1.2).
        DicomTag(0x0008, 0x0008): ["ORIGINAL", "DERIVED", "PRIMARY", "SECONDARY"],
        // Photometric Interpretation (C.7.6.3.1.2).
        DicomTag(0x0028, 0x0004): ["MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB", "HSV", "ARGB", "CMYK", "YBR_FULL",
                                   "YBR_FULL_422", "YBR_PARTIAL_422", "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT", "XYB"],
        // Pixel Intensity Relationship, Presentation Intent Type, Conversion Type.
        DicomTag(0x0028, 0x1040): ["LIN", "LOG", "DISP"],
        DicomTag(0x0008, 0x0068): ["FOR PRESENTATION", "FOR PROCESSING"],
        DicomTag(0x0008, 0x0064): ["DV", "DI", "DF", "WSD", "SD", "SI", "DRW", "SYN"],
        // Patient Position (C.7.3.1.1.2).
        DicomTag(0x0018, 0x5100): ["HFP", "HFS", "HFDR", "HFDL", "FFDR", "FFDL", "FFP", "FFS", "LFP", "LFS", "RFP", "RFS",
                                   "AFDR", "AFDL", "PFDR", "PFDL"],
        // Modality (C.7.3.1.1.1).
        DicomTag(0x0008, 0x0060): ["ANN", "AR", "ASMT", "AU", "BDUS", "BI", "BMD", "CFM", "CR", "CT", "CTPROTOCOL", "DMS", "DG",
                                   "DOC", "DX", "ECG", "EEG", "EMG", "EOG", "EPS", "ES", "FID", "GM", "HC", "HD", "IO", "IOL",
                                   "IVOCT", "IVUS", "KER", "KO", "LEN", "LS", "MG", "MR", "M3D", "NM", "OAM", "OCT", "OP",
                                   "OPM", "OPT", "OPTBSV", "OPTENF", "OPV", "OSS", "OT", "PA", "PLAN", "POS", "PR", "PT", "PX",
                                   "REG", "RESP", "RF", "RG", "RTDOSE", "RTIMAGE", "RTINTENT", "RTPLAN", "RTRAD", "RTRECORD",
                                   "RTSEGANN", "RTSTRUCT", "RWV", "SEG", "SM", "SMR", "SR", "SRF", "STAIN", "TEXTUREMAP", "TG",
                                   "US", "VA", "XA", "XAPROTOCOL", "XC"],
        // Coding Scheme Designator: the schemes codes in these files come from.
        DicomTag(0x0008, 0x0102): ["DCM", "SCT", "SRT", "LN", "UCUM", "FMA", "RADLEX", "NCIt", "UMLS"],
    ]
}
