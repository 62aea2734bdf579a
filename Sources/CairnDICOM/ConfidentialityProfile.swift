/// The options of the Basic Application Level Confidentiality Profile a file may declare in
/// De-identification Method Code Sequence (0012,0064), by their CID 7050 codes (scheme DCM), and
/// a dataset may accept. Named on the command line by `rawValue`.
public enum DeidentificationOption: String, Sendable, CaseIterable, Comparable {
    case cleanPixelData = "clean-pixel-data"
    case cleanRecognizableVisualFeatures = "clean-recognizable-visual-features"
    case cleanGraphics = "clean-graphics"
    case cleanStructuredContent = "clean-structured-content"
    case cleanDescriptors = "clean-descriptors"
    case retainLongitudinalFullDates = "retain-longitudinal-full-dates"
    case retainLongitudinalModifiedDates = "retain-longitudinal-modified-dates"
    case retainPatientCharacteristics = "retain-patient-characteristics"
    case retainDeviceIdentity = "retain-device-identity"
    case retainUIDs = "retain-uids"
    case retainSafePrivate = "retain-safe-private"
    case retainInstitutionIdentity = "retain-institution-identity"

    /// The CID 7050 code value.
    public var code: String {
        switch self {
        case .cleanPixelData: "113101"
        case .cleanRecognizableVisualFeatures: "113102"
        case .cleanGraphics: "113103"
        case .cleanStructuredContent: "113104"
        case .cleanDescriptors: "113105"
        case .retainLongitudinalFullDates: "113106"
        case .retainLongitudinalModifiedDates: "113107"
        case .retainPatientCharacteristics: "113108"
        case .retainDeviceIdentity: "113109"
        case .retainUIDs: "113110"
        case .retainSafePrivate: "113111"
        case .retainInstitutionIdentity: "113112"
        }
    }

    public init?(code: String) {
        guard let option = Self.allCases.first(where: { $0.code == code }) else { return nil }
        self = option
    }

    /// A comma-separated list of option names; throws naming the first unknown one.
    public static func parseList(_ text: String) throws(DeidentificationPolicyError) -> Set<DeidentificationOption> {
        var out = Set<DeidentificationOption>()
        for name in text.split(separator: ",").map({ $0.trimmingWhitespace() }) where !name.isEmpty {
            guard let option = DeidentificationOption(rawValue: name) else {
                throw .unknownOption(name, known: allCases.map(\.rawValue))
            }
            out.insert(option)
        }
        return out
    }

    public static func < (a: Self, b: Self) -> Bool { a.code < b.code }
}

public enum DeidentificationPolicyError: Error, CustomStringConvertible, Equatable {
    case unknownOption(String, known: [String])
    case badPseudonymPattern(String)

    public var description: String {
        switch self {
        case .unknownOption(let name, let known):
            return "'\(name)' is not a de-identification option; the options (PS3.16 CID 7050) are \(known.joined(separator: ", "))"
        case .badPseudonymPattern(let why): return "the pseudonym pattern is not a regular expression: \(why)"
        }
    }
}

extension Substring {
    func trimmingWhitespace() -> String {
        var s = self
        while let first = s.first, first == " " || first == "\t" { s.removeFirst() }
        while let last = s.last, last == " " || last == "\t" { s.removeLast() }
        return String(s)
    }
}

/// What Table E.1-1 asks of an attribute, reduced to what a verifier can check in the result: an
/// X or Z attribute must be empty (a dummy cannot be told from a real value); a D attribute must
/// hold a pseudonym; a U attribute a UID (its replacement cannot be checked); K and C keep a value.
/// A combined code (X/Z, X/D, Z/D, X/Z/D, X/Z/U*) allows its most permissive part.
public enum ProfileRequirement: Int, Sendable, Comparable, CustomStringConvertible {
    case empty, uid, pseudonym, kept

    init?(action: Substring) {
        var best: ProfileRequirement?
        for part in action.split(separator: "/") {
            let requirement: ProfileRequirement
            switch part {
            case "X", "Z": requirement = .empty
            case "U", "U*": requirement = .uid
            case "D": requirement = .pseudonym
            case "K", "C": requirement = .kept
            default: return nil
            }
            best = max(best ?? requirement, requirement)
        }
        guard let best else { return nil }
        self = best
    }

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }

    public var description: String {
        switch self {
        case .empty: "must be empty"
        case .uid: "must hold a UID"
        case .pseudonym: "must hold a pseudonym"
        case .kept: "may keep its value"
        }
    }
}

/// PS3.15 Table E.1-1 and Table E.3.10-1 as data (generated into
/// `ConfidentialityProfile+Generated.swift` by `Tools/gen/make_confidentiality_profile.py`).
public struct ConfidentialityProfile: Sendable {
    public struct Row: Sendable {
        /// The action code as the standard writes it (X, Z/D, X/Z/U*, ...).
        public var basicAction: String
        public var basic: ProfileRequirement
        /// What each option column says, where it says anything.
        public var options: [DeidentificationOption: ProfileRequirement]

        /// The requirement under the options in force: an option that names the row decides
        /// (the most permissive, where several do); otherwise the basic profile's.
        public func requirement(under active: Set<DeidentificationOption>) -> (ProfileRequirement, DeidentificationOption?) {
            var best: (ProfileRequirement, DeidentificationOption?) = (basic, nil)
            for (option, requirement) in options where active.contains(option) && (best.1 == nil || requirement > best.0) {
                best = (requirement, option)
            }
            return best
        }
    }

    /// A masked row: (50xx,xxxx) curves, (60xx,3000) overlay data, (60xx,4000) overlay comments.
    struct MaskedRow: Sendable {
        var mask: UInt32
        var value: UInt32
        var row: Row
    }

    public struct SafePrivate: Sendable, Hashable {
        public var group: UInt16
        /// The element's low byte within its creator's block.
        public var element: UInt8
        public var creator: String
    }

    public let rows: [DicomTag: Row]
    let masked: [MaskedRow]
    /// What the table says of private attributes (X; C under Retain Safe Private).
    public let privateRow: Row
    public let safePrivate: Set<SafePrivate>
    public let safePrivateCreators: Set<String>

    public static let standard = ConfidentialityProfile(table: tableSource, safePrivate: safePrivateSource)

    init(table: String, safePrivate: String) {
        var rows: [DicomTag: Row] = [:]
        var masked: [MaskedRow] = []
        var privateRow = Row(basicAction: "X", basic: .empty, options: [:])
        for line in table.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 2, let basic = ProfileRequirement(action: fields[1]) else { continue }
            var options: [DeidentificationOption: ProfileRequirement] = [:]
            for column in fields.dropFirst(2) {
                let parts = column.split(separator: ":")
                guard parts.count == 2, let option = DeidentificationOption(code: String(parts[0])),
                      let requirement = ProfileRequirement(action: parts[1]) else { continue }
                options[option] = requirement
            }
            let row = Row(basicAction: String(fields[1]), basic: basic, options: options)
            let key = fields[0]
            if key == "private" {
                privateRow = row
            } else if key.contains("x") {
                var mask: UInt32 = 0, value: UInt32 = 0
                for character in key.utf8 {
                    mask <<= 4
                    value <<= 4
                    if character != UInt8(ascii: "x"), let digit = UInt32(String(UnicodeScalar(character)), radix: 16) {
                        mask |= 0xF
                        value |= digit
                    }
                }
                masked.append(MaskedRow(mask: mask, value: value, row: row))
            } else if let tag = UInt32(key, radix: 16) {
                rows[DicomTag(value: tag)] = row
            }
        }
        var safe = Set<SafePrivate>()
        for line in safePrivate.split(separator: "\n") {
            let fields = line.split(separator: " ", maxSplits: 3)
            guard fields.count == 4, let group = UInt16(fields[0], radix: 16), let element = UInt8(fields[1], radix: 16) else { continue }
            safe.insert(SafePrivate(group: group, element: element, creator: String(fields[3])))
        }
        self.rows = rows
        self.masked = masked
        self.privateRow = privateRow
        self.safePrivate = safe
        self.safePrivateCreators = Set(safe.map(\.creator))
    }

    /// The table's row for a standard attribute (nil: the profile keeps it).
    public func row(for tag: DicomTag) -> Row? {
        if let row = rows[tag] { return row }
        // Repeating groups are even groups only: an odd group is private.
        guard tag.group & 1 == 0 else { return nil }
        return masked.first { tag.value & $0.mask == $0.value }?.row
    }

    /// The rows whose basic action is X, Z or D: the attributes a de-identified file may not carry
    /// a real value in.
    public var guardedTags: [DicomTag] {
        rows.filter { $0.value.basic == .empty || $0.value.basic == .pseudonym }.map(\.key).sorted()
    }
}
