import CairnFoundation
import CairnManifest
import CairnStore

/// The node side of manifest entries: what an indexed instance publishes under its dataset's allow-list.
extension ManifestAttribute {
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
