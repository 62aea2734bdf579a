/// RFC 9110 §14 byte ranges: parsing a Range header and resolving it against a representation.
public enum ByteRangeSpec: Equatable, Sendable {
    /// `first-last` (last inclusive) or `first-` (last = nil).
    case bounded(first: UInt64, last: UInt64?)
    /// `-length`: the final `length` bytes.
    case suffix(length: UInt64)
}

public enum RangeResolution: Equatable, Sendable {
    /// No usable Range header: send the whole representation with 200.
    case whole
    /// Send these half-open ranges with 206 (one range, or several as multipart/byteranges).
    case partial([Range<UInt64>])
    /// 416 with `Content-Range: bytes */size`.
    case unsatisfiable
    /// More ranges than the configured limit: 416 with a reason.
    case tooMany(Int)
}

public enum ByteRanges {
    /// Parses `bytes=...`. Returns nil for anything that is not a syntactically valid byte-range
    /// set; RFC 9110 says such a header is ignored.
    public static func parse(_ header: String) -> [ByteRangeSpec]? {
        let trimmed = header.drop { $0 == " " || $0 == "\t" }
        guard trimmed.count > 6, trimmed.prefix(6).lowercased() == "bytes=" else { return nil }
        var specs: [ByteRangeSpec] = []
        for rawPart in trimmed.dropFirst(6).split(separator: ",", omittingEmptySubsequences: false) {
            let part = rawPart.trimmingOWS()
            // Empty list elements are allowed by the list syntax (RFC 9110 §5.6.1).
            if part.isEmpty { continue }
            guard let dash = part.firstIndex(of: "-") else { return nil }
            let firstText = part[..<dash], lastText = part[part.index(after: dash)...]
            if firstText.isEmpty {
                guard let length = digits(lastText) else { return nil }
                specs.append(.suffix(length: length))
            } else {
                guard let first = digits(firstText) else { return nil }
                if lastText.isEmpty {
                    specs.append(.bounded(first: first, last: nil))
                } else {
                    guard let last = digits(lastText), last >= first else { return nil }
                    specs.append(.bounded(first: first, last: last))
                }
            }
        }
        return specs.isEmpty ? nil : specs
    }

    /// Resolves a Range header against a representation of `size` bytes. Unsatisfiable members
    /// are dropped; overlapping or adjacent ranges are coalesced (RFC 9110 §14.2 allows it) and
    /// the result is in ascending order.
    public static func resolve(_ header: String?, size: UInt64, maxRanges: Int) -> RangeResolution {
        guard let header, let specs = parse(header) else { return .whole }
        if specs.count > maxRanges { return .tooMany(specs.count) }
        var ranges: [Range<UInt64>] = []
        for spec in specs {
            switch spec {
            case .bounded(let first, let last):
                guard first < size else { continue }
                ranges.append(first..<(min(last ?? (size - 1), size - 1) + 1))
            case .suffix(let length):
                guard length > 0, size > 0 else { continue }
                ranges.append((size - min(length, size))..<size)
            }
        }
        if ranges.isEmpty { return .unsatisfiable }
        ranges.sort { $0.lowerBound < $1.lowerBound }
        var merged: [Range<UInt64>] = [ranges[0]]
        for range in ranges.dropFirst() {
            if range.lowerBound <= merged[merged.count - 1].upperBound {
                let last = merged.removeLast()
                merged.append(last.lowerBound..<max(last.upperBound, range.upperBound))
            } else {
                merged.append(range)
            }
        }
        return .partial(merged)
    }

    /// `1*DIGIT` that fits in UInt64.
    private static func digits(_ text: Substring) -> UInt64? {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return UInt64(text)
    }

    /// `Content-Range: bytes first-last/size` for a half-open range.
    public static func contentRange(_ range: Range<UInt64>, size: UInt64) -> String {
        "bytes \(range.lowerBound)-\(range.upperBound - 1)/\(size)"
    }
}

/// The framing of a `multipart/byteranges` body (RFC 9110 §14.6): the part headers before each
/// range and the closing delimiter, so the exact Content-Length is known before any byte is sent.
public struct MultipartByteRanges: Sendable {
    public let boundary: String
    public let ranges: [Range<UInt64>]
    public let partHeaders: [String]
    public let closing: String

    public init(ranges: [Range<UInt64>], size: UInt64, contentType: String, boundary: String) {
        self.boundary = boundary
        self.ranges = ranges
        partHeaders = ranges.enumerated().map { index, range in
            (index == 0 ? "" : "\r\n") + "--\(boundary)\r\nContent-Type: \(contentType)\r\n"
                + "Content-Range: \(ByteRanges.contentRange(range, size: size))\r\n\r\n"
        }
        closing = "\r\n--\(boundary)--\r\n"
    }

    public var contentType: String { "multipart/byteranges; boundary=\(boundary)" }

    public var contentLength: UInt64 {
        ranges.reduce(UInt64(closing.utf8.count)) { $0 + $1.upperBound - $1.lowerBound }
            + partHeaders.reduce(0) { $0 + UInt64($1.utf8.count) }
    }
}

extension Substring {
    fileprivate func trimmingOWS() -> Substring {
        var s = self
        while let c = s.first, c == " " || c == "\t" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" { s.removeLast() }
        return s
    }
}
