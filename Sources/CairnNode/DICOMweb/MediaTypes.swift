import Foundation

/// One element of an `Accept` header (RFC 9110 §12.5.1), as DICOMweb uses it: a media range with
/// parameters, of which PS3.18 reads `type` and `transfer-syntax` for `multipart/related`.
public struct MediaRange: Sendable, Equatable {
    public var mediaType: String
    public var parameters: [String: String]
    public var quality: Double

    /// The ranges of an Accept header, those with q=0 left out; an absent or empty header is `*/*`.
    public static func parseAccept(_ header: String?) -> [MediaRange] {
        guard let header, !header.trimmingCharacters(in: .whitespaces).isEmpty else {
            return [MediaRange(mediaType: "*/*", parameters: [:], quality: 1)]
        }
        // Most preferred first; equal preferences keep the client's order (a stable sort).
        return splitOutsideQuotes(header, on: ",").compactMap(parse).filter { $0.quality > 0 }
            .enumerated().sorted { ($0.element.quality, -$0.offset) > ($1.element.quality, -$1.offset) }.map(\.element)
    }

    /// `type/subtype; name=value; name="value"`; nil when it is not a media range.
    public static func parse(_ text: String) -> MediaRange? {
        let pieces = splitOutsideQuotes(text, on: ";")
        guard let first = pieces.first?.trimmingCharacters(in: .whitespaces).lowercased(), first.contains("/") else { return nil }
        var parameters: [String: String] = [:]
        var quality = 1.0
        for piece in pieces.dropFirst() {
            guard let equals = piece.firstIndex(of: "=") else { continue }
            let name = piece[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            var value = piece[piece.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
            if name == "q" { quality = Double(value) ?? 0 } else { parameters[name] = value }
        }
        return MediaRange(mediaType: first, parameters: parameters, quality: quality)
    }

    static func splitOutsideQuotes(_ text: String, on separator: Character) -> [String] {
        var parts: [String] = []
        var current = ""
        var quoted = false
        for character in text {
            if character == "\"" { quoted.toggle() }
            if character == separator && !quoted {
                parts.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        parts.append(current)
        return parts
    }

    /// Whether this range admits `mediaType` (`*/*`, `image/*` or the type itself).
    public func admits(_ mediaType: String) -> Bool {
        if self.mediaType == "*/*" || self.mediaType == mediaType { return true }
        guard self.mediaType.hasSuffix("/*") else { return false }
        return mediaType.hasPrefix(self.mediaType.dropLast())
    }

    /// Whether this is `multipart/related` (or `*/*`) with parts that may be of `mediaType`.
    public func partAdmits(_ mediaType: String) -> Bool {
        partType.map { MediaRange(mediaType: $0, parameters: [:], quality: 1).admits(mediaType) } ?? false
    }

    /// Whether an Accept header admits the DICOM JSON model (or plain JSON).
    public static func acceptsDicomJSON(_ header: String?) -> Bool {
        parseAccept(header).contains { $0.admits("application/dicom+json") || $0.admits("application/json") }
    }

    /// For `multipart/related` (or `*/*`): the part type it asks for (`*/*` when it does not say).
    public var partType: String? {
        if mediaType == "*/*" { return "*/*" }
        guard mediaType == "multipart/related" else { return nil }
        return parameters["type"]?.lowercased() ?? "*/*"
    }

    public var transferSyntax: String? { parameters["transfer-syntax"] }
}

/// The media types DICOMweb uses for pixel data in each transfer syntax (PS3.18 Table 8.7.3-4/5),
/// so a frame is labelled with what it is.
enum PixelMediaType {
    static let native = "application/octet-stream"

    static func forTransferSyntax(_ uid: String) -> String {
        switch uid {
        case "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99": return native
        case "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70": return "image/jpeg"
        case "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81": return "image/jls"
        case "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91": return "image/jp2"
        case "1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.93": return "image/jpx"
        case "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203": return "image/jphc"
        case "1.2.840.10008.1.2.5": return "image/dicom-rle"
        case "1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.101": return "video/mpeg2"
        case "1.2.840.10008.1.2.4.102", "1.2.840.10008.1.2.4.103", "1.2.840.10008.1.2.4.104",
             "1.2.840.10008.1.2.4.105", "1.2.840.10008.1.2.4.106": return "video/mp4"
        default: return native
        }
    }
}
