/// The de-identification gate: direct identifiers of the PS3.15 Basic Application Level
/// Confidentiality Profile (Table E.1-1) that must not carry a value unless the file declares
/// Patient Identity Removed (0012,0062) = YES.
public enum Deidentification {
    /// Attributes whose presence with a value identifies a person directly.
    public static let directIdentifiers: [String] = [
        "PatientName", "PatientBirthDate", "PatientBirthTime", "PatientAddress", "PatientTelephoneNumbers",
        "PatientTelecomInformation", "OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames",
        "PatientBirthName", "PatientMotherBirthName", "MedicalRecordLocator", "MilitaryRank",
        "BranchOfService", "InsurancePlanIdentification", "ResponsiblePerson", "RegionOfResidence",
        "PersonAddress", "PersonTelephoneNumbers", "ReferringPhysicianAddress",
        "ReferringPhysicianTelephoneNumbers", "PatientReligiousPreference",
    ]

    /// The identifying attributes a file carries; empty when it may be stored in a gated dataset.
    public static func violations(_ file: DicomFile) -> [String] {
        let ds = file.dataSet
        if ds.string("PatientIdentityRemoved")?.uppercased() == "YES" { return [] }
        let subject = ds.string("PatientID") ?? ""
        return directIdentifiers.filter { keyword in
            guard let element = ds[keyword] else { return false }
            switch element.value {
            case .sequence(let items): return !items.isEmpty
            case .bytes(let bytes):
                guard let text = ValueDecoder(dataSet: ds).strings(element)?.joined(separator: "\\") else {
                    return !bytes.isEmpty
                }
                if text.isEmpty { return false }
                // A name that only repeats the pseudonym, or says it was removed, names nobody.
                if keyword == "PatientName" {
                    let upper = text.uppercased()
                    if text == subject || upper.hasPrefix("ANON") || upper.hasPrefix("REMOVED") || upper == "^" { return false }
                }
                return true
            default:
                return true
            }
        }
    }
}
