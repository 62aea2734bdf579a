import CairnNode
import FuzzSupport

/// Any Range header against any size: no crash, and a partial answer is sorted, disjoint,
/// non-adjacent, non-empty ranges inside the representation, never more than the header asked for.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = fuzzBytes(data, count)
    guard bytes.count >= 9 else { return 0 }
    let size = bytes[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) } >> UInt64(bytes[0] & 63)
    let header = String(decoding: bytes[8...], as: UTF8.self)
    let maxRanges = 64
    switch ByteRanges.resolve(header, size: size, maxRanges: maxRanges) {
    case .whole:
        if let specs = ByteRanges.parse(header) { fatalError("parsed \(specs.count) specs but answered whole") }
    case .unsatisfiable, .tooMany:
        break
    case .partial(let ranges):
        guard let specs = ByteRanges.parse(header), !ranges.isEmpty, ranges.count <= min(specs.count, maxRanges) else {
            fatalError("partial answer without a matching parse: \(ranges)")
        }
        var previousEnd: UInt64?
        for range in ranges {
            guard !range.isEmpty, range.upperBound <= size else { fatalError("range \(range) outside a size of \(size)") }
            if let previousEnd, range.lowerBound <= previousEnd { fatalError("ranges overlap, touch or are unsorted: \(ranges)") }
            previousEnd = range.upperBound
            _ = ByteRanges.contentRange(range, size: size)
        }
    }
    return 0
}

runFuzzer { fuzzOne($0, $1) }
