import CairnHTTP
import Foundation

/// The framing of a `multipart/related` body (RFC 2387 over RFC 2046 §5.1) that WADO-RS responses
/// use: `--B CRLF headers CRLF CRLF body`, parts separated by `CRLF --B CRLF`, closed by `CRLF --B--`.
struct MultipartFraming: Sendable {
    let boundary: String

    init() { boundary = "cairn-" + UUID().uuidString.lowercased() }

    /// A boundary fixed by the content (from its entity tag), so the same resource is the same bytes.
    init(boundary: String) { self.boundary = boundary }

    func contentType(partType: String) -> String { "multipart/related; type=\"\(partType)\"; boundary=\(boundary)" }

    /// What goes before part `index`: the delimiter, then the part's headers.
    func partHead(index: Int, contentType: String, length: UInt64?) -> String {
        (index == 0 ? "" : "\r\n") + "--\(boundary)\r\nContent-Type: \(contentType)\r\n"
            + (length.map { "Content-Length: \($0)\r\n" } ?? "") + "\r\n"
    }

    var closing: String { "\r\n--\(boundary)--\r\n" }

    /// The whole body's length, from each part's content type and length.
    func bodyLength(_ parts: [(contentType: String, length: UInt64)]) -> UInt64 {
        var total = UInt64(closing.utf8.count)
        for (index, part) in parts.enumerated() {
            total += UInt64(partHead(index: index, contentType: part.contentType, length: part.length).utf8.count) + part.length
        }
        return total
    }
}

/// Reads a `multipart/related` body as it arrives, in whatever pieces the network delivers, with
/// bounded memory: part headers up to `maxHeaderBytes`, and otherwise only a delimiter's length
/// of bytes held back while looking for the next boundary.
struct MultipartReader {
    enum Event {
        case partStart(headers: [String: String])
        case body(UnsafeRawBufferPointer)
        case partEnd
    }

    enum State: Equatable { case preamble, afterDelimiter, headers, body, finished }

    enum Failure: Error, CustomStringConvertible {
        case headersTooLong(Int)
        case malformedDelimiter
        var description: String {
            switch self {
            case .headersTooLong(let limit): "a part's headers exceed \(limit) bytes"
            case .malformedDelimiter: "a boundary delimiter is followed by neither CRLF nor --"
            }
        }
    }

    static let maxHeaderBytes = 16 << 10
    private let delimiter: [UInt8]
    private(set) var state = State.preamble
    /// Bytes received but not yet handed on. The body starts with CRLF virtually, so the first
    /// delimiter (which has no CRLF before it) is found like the others.
    private var pending: [UInt8] = [13, 10]

    init(boundary: String) { delimiter = Array("\r\n--\(boundary)".utf8) }

    var finished: Bool { state == .finished }

    mutating func feed(_ bytes: UnsafeRawBufferPointer, _ emit: (Event) throws -> Void) throws {
        pending.append(contentsOf: bytes)
        try drain(emit)
    }

    private mutating func drain(_ emit: (Event) throws -> Void) throws {
        var start = 0
        defer { pending.removeFirst(start) }
        while true {
            switch state {
            case .finished:
                start = pending.count  // the epilogue is ignored
                return
            case .preamble, .body:
                if let found = find(delimiter, in: pending, from: start) {
                    if state == .body {
                        try pending.withUnsafeBytes { try emit(.body(UnsafeRawBufferPointer(rebasing: $0[start..<found]))) }
                        try emit(.partEnd)
                    }
                    start = found + delimiter.count
                    state = .afterDelimiter
                } else {
                    // Keep what could be the start of a delimiter split across pieces.
                    let safe = max(start, pending.count - (delimiter.count - 1))
                    if state == .body && safe > start {
                        try pending.withUnsafeBytes { try emit(.body(UnsafeRawBufferPointer(rebasing: $0[start..<safe]))) }
                    }
                    start = safe
                    return
                }
            case .afterDelimiter:
                guard pending.count - start >= 2 else { return }
                if pending[start] == 45 && pending[start + 1] == 45 {
                    state = .finished
                    continue
                }
                // Transport padding (RFC 2046: linear white space) may precede the CRLF.
                var position = start
                while position < pending.count && (pending[position] == 32 || pending[position] == 9) { position += 1 }
                guard pending.count - position >= 2 else { return }
                guard pending[position] == 13 && pending[position + 1] == 10 else { throw Failure.malformedDelimiter }
                start = position + 2
                state = .headers
            case .headers:
                guard pending.count - start >= 2 else { return }
                var headers: [String: String] = [:]
                if pending[start] == 13 && pending[start + 1] == 10 {
                    start += 2  // a part without headers
                } else {
                    guard let end = find([13, 10, 13, 10], in: pending, from: start) else {
                        if pending.count - start > Self.maxHeaderBytes { throw Failure.headersTooLong(Self.maxHeaderBytes) }
                        return
                    }
                    headers = Self.headers(pending[start..<end])
                    start = end + 4
                }
                state = .body
                try emit(.partStart(headers: headers))
            }
        }
    }

    /// `Name: value` lines, names lower-cased.
    static func headers(_ bytes: ArraySlice<UInt8>) -> [String: String] {
        var out: [String: String] = [:]
        for line in String(decoding: bytes, as: UTF8.self).components(separatedBy: "\r\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            out[line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()] =
                line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return out
    }

    private func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard let first = needle.first, haystack.count - start >= needle.count else { return nil }
        return haystack.withUnsafeBytes { hay -> Int? in
            guard let base = hay.baseAddress else { return nil }
            var index = start
            let last = hay.count - needle.count
            while index <= last {
                guard let hit = memchr(base + index, Int32(first), last - index + 1) else { return nil }
                index = UnsafeRawPointer(hit) - base
                if memcmp(base + index, needle, needle.count) == 0 { return index }
                index += 1
            }
            return nil
        }
    }
}
