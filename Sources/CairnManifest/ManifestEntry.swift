import CairnStore

/// The attributes a manifest entry may carry. Digest and size always; the rest only when the
/// dataset's allow-list names them. Names, birth dates, addresses, free text and private tags are
/// not indexed at all, so no allow-list can publish them.
public enum ManifestAttribute: String, CaseIterable, Sendable {
    case subject, studyUID = "study_uid", seriesUID = "series_uid", sopInstanceUID = "sop_instance_uid"
    case sopClassUID = "sop_class_uid", modality, bodyPart = "body_part", manufacturer, sex
    case rows, columns, frames, transferSyntax = "transfer_syntax"

    /// DESIGN.md's default allow-list.
    public static let defaults: [ManifestAttribute] = [
        .subject, .studyUID, .seriesUID, .sopInstanceUID, .modality, .bodyPart, .manufacturer, .sex,
    ]

    /// Parses a comma-separated allow-list, naming any attribute that cannot be published.
    public static func parseList(_ text: String) throws -> [ManifestAttribute] {
        try text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.map { name in
            guard let attribute = ManifestAttribute(rawValue: name) else {
                throw StoreError.invalidArgument("'\(name)' cannot be published; allowed: "
                    + allCases.map(\.rawValue).joined(separator: ", "))
            }
            return attribute
        }
    }

    func value(in record: InstanceRecord) -> JSONValue? {
        func text(_ value: String?) -> JSONValue? { value.map(JSONValue.string) }
        func number(_ value: Int?) -> JSONValue? { value.map { .int(Int64($0)) } }
        switch self {
        case .subject: return text(record.subject)
        case .studyUID: return text(record.studyUID)
        case .seriesUID: return text(record.seriesUID)
        case .sopInstanceUID: return text(record.sopInstanceUID)
        case .sopClassUID: return text(record.sopClassUID)
        case .modality: return text(record.modality)
        case .bodyPart: return text(record.bodyPart)
        case .manufacturer: return text(record.manufacturer)
        case .sex: return text(record.sex)
        case .rows: return number(record.rows)
        case .columns: return number(record.columns)
        case .frames: return number(record.frames)
        case .transferSyntax: return text(record.transferSyntax)
        }
    }
}

/// One manifest entry: `{"digest", "size", ...allow-listed attributes}`.
public enum ManifestEntry {
    public static func make(_ listed: ListedBlob, attributes: [ManifestAttribute]) -> JSONValue {
        var members: [String: JSONValue] = [
            "digest": .string(listed.record.digest.description), "size": .int(Int64(listed.record.size)),
        ]
        if let instance = listed.instance {
            for attribute in attributes {
                if let value = attribute.value(in: instance) { members[attribute.rawValue] = value }
            }
        }
        return .object(members)
    }
}
