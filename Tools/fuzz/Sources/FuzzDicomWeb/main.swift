import CairnDICOM
import CairnStore
import FuzzSupport
@testable import CairnNode

/// DICOMweb's parsers of what clients send: a STOW-RS multipart body (boundary, then NUL, then the
/// body), read whole and in pieces, must give the same parts either way; the same bytes as QIDO-RS
/// query items and as an Accept header must give an answer or a 400, never a crash, and an
/// accepted query stays within its bounds.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = fuzzBytes(data, count)
    let split = bytes.firstIndex(of: 0) ?? min(bytes.count, 8)
    let boundary = String(decoding: bytes[..<split].prefix(70), as: UTF8.self)
    let body = Array(bytes[min(bytes.count, split + 1)...])
    if !boundary.isEmpty {
        let whole = read(body, boundary: boundary, piece: body.count)
        let pieces = read(body, boundary: boundary, piece: 1 + Int(bytes.first ?? 0) % 17)
        if whole.finished != pieces.finished || whole.parts != pieces.parts || whole.failed != pieces.failed {
            fatalError("pieces changed the reading of a multipart body")
        }
    }
    let text = String(decoding: bytes, as: UTF8.self)
    let items = text.split(separator: "&").map { item -> (name: String, value: String) in
        let pair = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        return (String(pair[0]), pair.count > 1 ? String(pair[1]) : "")
    }
    for level in QueryLevel.allCases {
        guard let query = try? QidoQuery(level: level, items: items) else { continue }
        if !(1...QidoQuery.maximumLimit).contains(query.query.limit) || query.query.offset < 0 { fatalError("paging out of bounds") }
        for condition in query.query.conditions {
            if case .any(let values) = condition.match, [.studyUID, .seriesUID, .sopUID, .sopClass].contains(condition.key),
               values.contains(where: { !$0.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || $0 == 46 } }) {
                fatalError("a UID that is not digits and dots was accepted")
            }
        }
    }
    _ = MediaRange.parseAccept(text).map { ($0.partType, $0.transferSyntax, $0.admits("application/dicom")) }
    return 0
}

func read(_ body: [UInt8], boundary: String, piece: Int) -> (parts: [[UInt8]], finished: Bool, failed: Bool) {
    var reader = MultipartReader(boundary: boundary)
    var parts: [[UInt8]] = []
    var start = 0
    do {
        while start < body.count {
            let end = min(body.count, start + piece)
            try body[start..<end].withUnsafeBytes { chunk in
                try reader.feed(chunk) { event in
                    switch event {
                    case .partStart: parts.append([])
                    case .body(let bytes): parts[parts.count - 1].append(contentsOf: bytes)
                    case .partEnd: break
                    }
                }
            }
            start = end
        }
    } catch {
        return (parts, reader.finished, true)
    }
    return (parts, reader.finished, false)
}

runFuzzer { fuzzOne($0, $1) }
