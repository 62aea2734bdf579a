import CairnNode
import CairnStore
import FuzzSupport

/// The entries route's `after` and `limit`: either a 400 naming the parameter, or a digest that
/// prints back as given (lowercase) and a positive limit.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = fuzzBytes(data, count)
    let split = bytes.firstIndex(of: 0) ?? bytes.count
    let after = String(decoding: bytes[..<split], as: UTF8.self)
    let limit = split < bytes.count ? String(decoding: bytes[(split + 1)...], as: UTF8.self) : nil
    for (a, l) in [(after, limit), (nil, after), (after, nil)] {
        guard let query = try? EntriesQuery(after: a, limit: l) else { continue }
        if let digest = query.after, a != digest.description, a != digest.hex { fatalError("after '\(a ?? "")' read as \(digest)") }
        if query.limit <= 0 { fatalError("limit \(query.limit) accepted") }
        if l == nil, query.limit != Int.max { fatalError("a limit appeared from nowhere") }
    }
    return 0
}

runFuzzer { fuzzOne($0, $1) }
