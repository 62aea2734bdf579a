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
        "ReferringPhysicianTelephoneNumbers", "PatientReligiousPreference", "PatientBirthDateInAlternativeCalendar",
        "PatientDeathDateInAlternativeCalendar", "PersonName",
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
        // The File Meta group is part of the file too: an identifier there is one.
        if let meta = file.meta { collect(meta, subject: ds.string("PatientID") ?? "", into: &found, anyPersonName: true) }
        var seen = Set<String>()
        return found.filter { seen.insert($0).inserted }
    }

    /// `anyPersonName`: every PN element counts (the File Meta group has no business holding one).
    private static func collect(_ ds: DataSet, subject: String, into found: inout [String], anyPersonName: Bool = false) {
        for element in ds.elements {
            if case .sequence(let items) = element.value {
                if let keyword = identifierTags[element.tag], !items.isEmpty { found.append(keyword) }
                for item in items { collect(item, subject: subject, into: &found, anyPersonName: anyPersonName) }
                continue
            }
            let keyword: String
            if let known = identifierTags[element.tag] {
                keyword = known
            } else if element.tag.isPrivate, element.vr == .PN {
                keyword = "private person name \(element.tag)"
            } else if anyPersonName, element.vr == .PN {
                keyword = "person name \(element.tag) in the File Meta group"
            } else {
                continue
            }
            if carriesValue(element, keyword: keyword, in: ds, subject: subject) { found.append(keyword) }
        }
    }

    private static func carriesValue(_ element: DataElement, keyword: String, in ds: DataSet, subject: String) -> Bool {
        guard case .bytes(let bytes) = element.value else { return true }
        guard let values = ValueDecoder(dataSet: ds).strings(element) else { return !bytes.isEmpty }
        let named = values.filter { $0.contains { $0 != " " } }
        guard element.vr == .PN || keyword == "PatientName" else { return !named.isEmpty }
        // A name that only repeats the pseudonym, or says it was removed, names nobody; each value
        // of a multi-valued name is judged alone.
        return named.contains { !namesNobody($0, subject: subject) }
    }

    /// A pseudonym repeated (one without the `^` and spaces of a person's name), `^`, or a marker
    /// such as ANON, ANON^…, ANONYMIZED, ANONYMOUS, REMOVED (not a surname that starts like one).
    static func namesNobody(_ value: String, subject: String) -> Bool {
        let upper = value.uppercased()
        if value == subject { return !value.contains("^") && !value.contains(" ") && !value.contains("=") }
        if upper == "^" || upper == "ANON" || upper == "REMOVED" || upper == "ANONYMOUS" || upper.hasPrefix("ANONYMI") { return true }
        return ["ANON^", "ANON-", "ANON_", "REMOVED^"].contains { upper.hasPrefix($0) }
    }
}
