import CairnDICOM
import CairnHTTP
import CairnStore

/// A QIDO-RS request's query (PS3.18 8.3.4): matching keys by keyword or tag, `includefield`,
/// `limit`, `offset`, `fuzzymatching`. What the index cannot match is refused with a 400 naming it:
/// a search that silently ignored a key would return more than was asked for.
public struct QidoQuery: Sendable, Equatable {
    public var query: InstanceQuery
    /// `Warning` header values (PS3.18 8.3.4.1 wording) for what was accepted but not honoured.
    public var warnings: [String] = []

    /// The keys index v9 added: rows indexed before it have them empty until `cairn reindex`.
    static let keysAddedInV9: Set<InstanceQuery.Key> = [.patientName, .accessionNumber, .studyID, .studyTime, .seriesNumber,
                                                        .instanceNumber, .referringPhysician, .studyDescription]

    /// Whether the query matches on a key that index v9 added.
    public var matchesNewerKeys: Bool { query.conditions.contains { Self.keysAddedInV9.contains($0.key) } }

    /// The warning for a search on those keys while rows from before v9 remain.
    static let olderRowsWarning: String = {
        let names = matchingKeys.filter { keysAddedInV9.contains($0.value) }.keys
            .compactMap { DataDictionary.standard.keyword(for: $0) }.sorted()
        return "299 cairn: Instances indexed before index v9 are not matched on " + names.joined(separator: ", ")
            + "; run `cairn reindex` to include them"
    }()

    /// The most results one response carries; a larger `limit` is cut to it with a warning.
    public static let maximumLimit = 1000
    public static let defaultLimit = 100

    /// The keys a search may match on, by the tag that names them (keywords resolve to tags).
    static let matchingKeys: [DicomTag: InstanceQuery.Key] = [
        DicomTag(0x0010, 0x0020): .patientID, DicomTag(0x0010, 0x0010): .patientName,
        DicomTag(0x0020, 0x000D): .studyUID, DicomTag(0x0020, 0x000E): .seriesUID,
        DicomTag(0x0008, 0x0018): .sopUID, DicomTag(0x0008, 0x0016): .sopClass,
        DicomTag(0x0008, 0x0060): .modality, DicomTag(0x0008, 0x0061): .modality,
        DicomTag(0x0008, 0x0020): .studyDate, DicomTag(0x0008, 0x0030): .studyTime,
        DicomTag(0x0008, 0x0050): .accessionNumber, DicomTag(0x0020, 0x0010): .studyID,
        DicomTag(0x0020, 0x0011): .seriesNumber, DicomTag(0x0020, 0x0013): .instanceNumber,
        DicomTag(0x0008, 0x0090): .referringPhysician, DicomTag(0x0008, 0x1030): .studyDescription,
    ]

    /// Attributes a response can carry: what the index stores plus what the query computes.
    static let returnable: Set<DicomTag> = Set(QueryAttributes.study + QueryAttributes.series + QueryAttributes.instance
        + [DicomTag(0x0008, 0x0056), DicomTag(0x0008, 0x0061), DicomTag(0x0008, 0x1190), DicomTag(0x0020, 0x1206),
           DicomTag(0x0020, 0x1208), DicomTag(0x0020, 0x1209)])

    /// `items` are the decoded query parameters in order; `scope` the UIDs the path fixes.
    public init(level: QueryLevel, items: [(name: String, value: String)], study: String? = nil,
                series: String? = nil) throws(APIError) {
        var conditions: [InstanceQuery.Condition] = []
        var limit = Self.defaultLimit
        var offset = 0
        var warnings: [String] = []
        var notReturned: [String] = []
        for (name, value) in items {
            switch name {
            case "limit":
                guard let number = Int(value), number > 0 else { throw .badRequest("limit must be a positive integer, not '\(value.prefix(40))'") }
                if number > Self.maximumLimit {
                    warnings.append("299 cairn: limit \(number) is over the maximum of \(Self.maximumLimit); at most \(Self.maximumLimit) results are returned")
                }
                limit = min(number, Self.maximumLimit)
            case "offset":
                guard let number = Int(value), number >= 0 else { throw .badRequest("offset must be a non-negative integer, not '\(value.prefix(40))'") }
                offset = number
            case "fuzzymatching":
                guard value == "true" || value == "false" else { throw .badRequest("fuzzymatching must be true or false") }
                if value == "true" {
                    warnings.append("299 cairn: The fuzzymatching parameter is not supported. Only literal matching has been performed.")
                }
            case "includefield":
                for field in value.split(separator: ",").map(String.init) where field != "all" {
                    let tag = try Self.tag(named: field)
                    if !Self.returnable.contains(tag) { notReturned.append(field) }
                }
            default:
                let tag = try Self.tag(named: name)
                guard let key = Self.matchingKeys[tag] else {
                    throw .badRequest("matching on \(name) is not supported; the keys are "
                                      + "PatientID, PatientName, StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID, SOPClassUID, "
                                      + "Modality, ModalitiesInStudy, StudyDate, StudyTime, AccessionNumber, StudyID, SeriesNumber, InstanceNumber, "
                                      + "ReferringPhysicianName, StudyDescription")
                }
                // Universal matching (an empty value) matches everything: no condition.
                if value.isEmpty { continue }
                conditions.append(InstanceQuery.Condition(key, try Self.match(key, value, name: name)))
            }
        }
        if !notReturned.isEmpty {
            warnings.append("299 cairn: The following attributes are not returned by this node: " + notReturned.joined(separator: ","))
        }
        if let study { conditions.append(.init(.studyUID, .any([try Self.uid(study, name: "study UID")]))) }
        if let series { conditions.append(.init(.seriesUID, .any([try Self.uid(series, name: "series UID")]))) }
        query = InstanceQuery(level: level, conditions: conditions, limit: limit, offset: offset)
        self.warnings = warnings
    }

    /// A keyword (`PatientID`) or a tag (`00100020`); sequence paths (`A.B`) are not matched.
    static func tag(named name: String) throws(APIError) -> DicomTag {
        if name.contains(".") { throw .badRequest("matching inside sequences (\(name.prefix(80))) is not supported") }
        if name.utf8.count == 8, let value = UInt32(name, radix: 16) { return DicomTag(value: value) }
        guard let tag = DataDictionary.standard.tag(forKeyword: name) else {
            throw .badRequest("unknown query key '\(name.prefix(80))': not a query parameter, DICOM keyword or tag")
        }
        return tag
    }

    static func match(_ key: InstanceQuery.Key, _ value: String, name: String) throws(APIError) -> InstanceQuery.Match {
        switch key {
        case .studyUID, .seriesUID, .sopUID, .sopClass:
            // List of UID matching: comma (PS3.18) or backslash (PS3.4) separated.
            let uids = value.split(whereSeparator: { $0 == "," || $0 == "\\" }).map(String.init)
            return .any(try uids.map { uid throws(APIError) in try Self.uid(uid, name: name) })
        case .studyDate:
            return try range(value, name: name, isValid: Self.isDate)
        case .studyTime:
            return try range(value, name: name, isValid: Self.isTime)
        case .seriesNumber, .instanceNumber:
            guard let number = Int(value) else { throw .badRequest("\(name) must be an integer, not '\(value.prefix(40))'") }
            return .integer(number)
        case .modality:
            let codes = value.split(separator: ",").map(String.init)
            for code in codes where !code.utf8.allSatisfy({ ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) || $0 == 95 }) || code.utf8.count > 16 {
                throw .badRequest("\(name) '\(code.prefix(40))' is not a modality code")
            }
            return codes.count == 1 ? .value(codes[0], wildcard: false) : .any(codes)
        case .patientID, .patientName, .accessionNumber, .studyID, .referringPhysician, .studyDescription:
            guard value.utf8.count <= 200 else { throw .badRequest("\(name) is longer than any stored value") }
            return .value(value, wildcard: value.contains("*") || value.contains("?"))
        }
    }

    static func uid(_ text: String, name: String) throws(APIError) -> String {
        let bytes = Array(text.utf8)
        let wellFormed = !bytes.isEmpty && bytes.count <= 64 && bytes.first != 46 && bytes.last != 46
            && bytes.allSatisfy { ($0 >= 48 && $0 <= 57) || $0 == 46 } && !text.contains("..")
        guard wellFormed else { throw .badRequest("\(name) '\(text.prefix(80))' is not a UID (digits and dots, at most 64)") }
        return text
    }

    /// `A`, `A-B`, `-B`, `A-` (PS3.4 C.2.2.2.5), each bound checked.
    static func range(_ value: String, name: String, isValid: (Substring) -> Bool) throws(APIError) -> InstanceQuery.Match {
        let parts = value.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        for part in parts where !part.isEmpty && !isValid(part) {
            throw .badRequest("\(name) '\(value.prefix(40))' is not a value or range (like 20200101-20201231)")
        }
        if parts.count == 1 { return .value(value, wildcard: false) }
        let lower = parts[0].isEmpty ? nil : String(parts[0])
        let upper = parts[1].isEmpty ? nil : String(parts[1])
        guard lower != nil || upper != nil else { throw .badRequest("\(name) '-' has no bound") }
        return .range(lower: lower, upper: upper)
    }

    static func isDate(_ text: Substring) -> Bool {
        guard text.utf8.count == 8, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
              let month = Int(text.dropFirst(4).prefix(2)), let day = Int(text.suffix(2)) else { return false }
        return (1...12).contains(month) && (1...31).contains(day)
    }

    static func isTime(_ text: Substring) -> Bool {
        let digits = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = digits.first, [2, 4, 6].contains(whole.utf8.count),
              whole.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return false }
        return digits.count == 1 || (whole.utf8.count == 6 && digits[1].utf8.count <= 6 && digits[1].utf8.allSatisfy { $0 >= 48 && $0 <= 57 })
    }
}
