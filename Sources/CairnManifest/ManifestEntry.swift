import CairnFoundation
import Foundation

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
                throw ManifestError.invalid("'\(name)' cannot be published; allowed: "
                    + allCases.map(\.rawValue).joined(separator: ", "))
            }
            return attribute
        }
    }
}

/// Why a manifest attribute list or document was refused.
public enum ManifestError: Error, CustomStringConvertible, Equatable {
    case invalid(String)

    public var description: String {
        switch self { case .invalid(let reason): reason }
    }
}
