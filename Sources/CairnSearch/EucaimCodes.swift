/// The EUCAIM catalogue's criteria (samply/eucaim-frontend `static/catalogues/catalogue-eucaim.json`)
/// and what each code means in the values Cairn indexes from DICOM. One table, read by the node
/// and the hub alike.
public enum EucaimCodes {
    public static let sexKey = "SNOMEDCT263495000"
    public static let ageKey = "SNOMEDCT423493009"
    public static let diagnosisKey = "SNOMEDCT439401001"
    public static let yearOfDiagnosisKey = "SNOMEDCT432213005"
    public static let modalityKey = "RID10311"
    public static let bodyPartKey = "SNOMEDCT123037004"
    public static let manufacturerKey = "C25392"
    /// "unknown", for any key: matches instances with no value.
    public static let unknown = "SNOMEDCT261665006"

    /// PatientSex (0010,0040) values.
    public static let sex: [String: [String]] = [
        "SNOMEDCT248153007": ["M"], "SNOMEDCT248152002": ["F"], "SNOMEDCT74964007": ["O"],
    ]

    /// Modality (0008,0060) values: PET is `PT` in DICOM, SPECT is `NM`.
    public static let modality: [String: [String]] = [
        "RID10312": ["MR"], "RID10321": ["CT"], "RID10337": ["PT"], "RID10334": ["NM"],
    ]

    /// BodyPartExamined (0018,0015) defined terms (PS3.16 Annex L). A lung is imaged as the chest.
    public static let bodyPart: [String: [String]] = [
        "SNOMEDCT76752008": ["BREAST"], "SNOMEDCT71854001": ["COLON"], "SNOMEDCT39607008": ["LUNG", "CHEST"],
        "SNOMEDCT12921003": ["PELVIS"], "SNOMEDCT816092008": ["PELVIS"], "SNOMEDCT41216001": ["PROSTATE"],
        "SNOMEDCT818981001": ["ABDOMEN"], "SNOMEDCT69536005": ["HEAD"],
    ]

    /// Manufacturer (0008,0070) as vendors write it: matched as a case-insensitive prefix.
    public static let manufacturer: [String: [String]] = [
        "C200140": ["SIEMENS"], "birnlex_3066": ["SIEMENS"],
        "birnlex_12833": ["GE ", "GE_", "GENERAL ELECTRIC"], "birnlex_3065": ["PHILIPS"],
        "birnlex_3067": ["TOSHIBA", "CANON"],
    ]

    /// A dataset's diagnosis code, and the `--cancer-type` words that mean it.
    public static let diagnosisByCancerType: [String: String] = [
        "colon": "SNOMEDCT363406005", "colorectal": "SNOMEDCT363406005", "breast": "SNOMEDCT254837009",
        "lung": "SNOMEDCT363358000", "pelvis": "SNOMEDCT363484005", "prostate": "SNOMEDCT399068003",
        "rectum": "SNOMEDCT363351006", "rectal": "SNOMEDCT363351006",
    ]

    public static let diagnoses: Set<String> = Set(diagnosisByCancerType.values)

    /// The catalogue's display names, for answers.
    public static let sexNames: [String: String] = ["M": "male", "F": "female", "O": "other"]

    /// Focus's `eucaim-api` GET parameters and the key each stands for (focus `src/eucaim_api.rs`).
    public static let parameterKeys: [String: String] = [
        "gender": sexKey, "diagnosis": diagnosisKey, "modality": modalityKey, "bodyPart": bodyPartKey,
        "manufacturer": manufacturerKey,
    ]

    /// The catalogue code a GET parameter's value stands for (Focus sends words for most keys and
    /// the SNOMED code for the diagnosis); a value Cairn does not know stays as given, an unknown code.
    public static func code(forParameter name: String, value: String) -> String {
        let words: [String: [String: String]] = [
            "gender": ["male": "SNOMEDCT248153007", "female": "SNOMEDCT248152002", "other": "SNOMEDCT74964007",
                       "unknown": unknown],
            "modality": ["MR": "RID10312", "CT": "RID10321", "PET": "RID10337", "SPECT": "RID10334"],
            "bodyPart": ["breast": "SNOMEDCT76752008", "colon": "SNOMEDCT71854001", "lung": "SNOMEDCT39607008",
                         "pelvis": "SNOMEDCT12921003", "prostate": "SNOMEDCT41216001"],
            "manufacturer": ["Siemens": "C200140", "General Electric": "birnlex_12833", "General%20Electric": "birnlex_12833",
                             "Philips": "birnlex_3065", "Toshiba": "birnlex_3067"],
        ]
        return words[name]?[value] ?? value
    }
}
