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

    static let identifierTags: [DicomTag: String] = Dictionary(
        directIdentifiers.compactMap { keyword in DataDictionary.standard.tag(forKeyword: keyword).map { ($0, keyword) } },
        uniquingKeysWith: { a, _ in a })

    /// The identifying attributes a file carries, at any depth (an identifier inside a sequence
    /// item counts), and any private element of VR PN with a value; empty when it may be stored
    /// in a gated dataset.
    public static func violations(_ file: DicomFile) -> [String] {
        let ds = file.dataSet
        if ds.string("PatientIdentityRemoved")?.uppercased() == "YES" { return [] }
        var found: [String] = []
        collect(ds, subject: ds.string("PatientID") ?? "", into: &found)
        var seen = Set<String>()
        return found.filter { seen.insert($0).inserted }
    }

    private static func collect(_ ds: DataSet, subject: String, into found: inout [String]) {
        for element in ds.elements {
            if case .sequence(let items) = element.value {
                if let keyword = identifierTags[element.tag], !items.isEmpty { found.append(keyword) }
                for item in items { collect(item, subject: subject, into: &found) }
                continue
            }
            let keyword: String
            if let known = identifierTags[element.tag] {
                keyword = known
            } else if element.tag.isPrivate, !element.tag.isPrivateCreator, element.vr == .PN {
                keyword = "private person name \(element.tag)"
            } else {
                continue
            }
            if carriesValue(element, keyword: keyword, in: ds, subject: subject) { found.append(keyword) }
        }
    }

    private static func carriesValue(_ element: DataElement, keyword: String, in ds: DataSet, subject: String) -> Bool {
        guard case .bytes(let bytes) = element.value else { return true }
        guard let text = ValueDecoder(dataSet: ds).strings(element)?.joined(separator: "\\") else { return !bytes.isEmpty }
        if text.isEmpty { return false }
        // A name that only repeats the pseudonym, or says it was removed, names nobody.
        if keyword == "PatientName" || element.vr == .PN {
            let upper = text.uppercased()
            if text == subject || upper.hasPrefix("ANON") || upper.hasPrefix("REMOVED") || upper == "^" { return false }
        }
        return true
    }
}
