import CairnTestSupport
import Testing
@testable import CairnNode

@Suite struct ByteRangesTests {
    @Test func rfc9110Examples() {
        let size: UInt64 = 10_000
        #expect(ByteRanges.resolve("bytes=0-499", size: size, maxRanges: 8) == .partial([0..<500]))
        #expect(ByteRanges.resolve("bytes=500-999", size: size, maxRanges: 8) == .partial([500..<1000]))
        #expect(ByteRanges.resolve("bytes=-500", size: size, maxRanges: 8) == .partial([9500..<10_000]))
        #expect(ByteRanges.resolve("bytes=9500-", size: size, maxRanges: 8) == .partial([9500..<10_000]))
        #expect(ByteRanges.resolve("bytes=0-0,-1", size: size, maxRanges: 8) == .partial([0..<1, 9999..<10_000]))
        // Overlapping and adjacent ranges coalesce.
        #expect(ByteRanges.resolve("bytes=500-600,601-999", size: size, maxRanges: 8) == .partial([500..<1000]))
        #expect(ByteRanges.resolve("bytes=500-700,601-999", size: size, maxRanges: 8) == .partial([500..<1000]))
        // A last position past the end is clamped; a first position past it is unsatisfiable.
        #expect(ByteRanges.resolve("bytes=9000-20000", size: size, maxRanges: 8) == .partial([9000..<10_000]))
        #expect(ByteRanges.resolve("bytes=10000-", size: size, maxRanges: 8) == .unsatisfiable)
        #expect(ByteRanges.resolve("bytes=-0", size: size, maxRanges: 8) == .unsatisfiable)
        #expect(ByteRanges.resolve("bytes=10000-10001,0-1", size: size, maxRanges: 8) == .partial([0..<2]))
        #expect(ByteRanges.resolve("bytes=0-", size: 0, maxRanges: 8) == .unsatisfiable)
        #expect(ByteRanges.resolve("bytes= 1-2 , , 4-5", size: size, maxRanges: 8) == .partial([1..<3, 4..<6]))
        #expect(ByteRanges.resolve("bytes=0-1,2-3,4-5", size: size, maxRanges: 2) == .tooMany(3))
    }

    @Test func malformedHeadersAreIgnored() {
        for header in ["", "bytes=", "bytes=abc", "bytes=5-1", "items=0-1", "bytes=1-2-3", "bytes=--1", "bytes=0x10-20",
                       "bytes=-", "bytes=99999999999999999999-", "bytes=1 2-3", "bytes=+1-2", "0-10"] {
            #expect(ByteRanges.resolve(header, size: 100, maxRanges: 8) == .whole, "\(header)")
        }
        #expect(ByteRanges.resolve(nil, size: 100, maxRanges: 8) == .whole)
    }

    /// Random headers against a byte-set model: the resolved ranges cover exactly the bytes any
    /// satisfiable member asks for, sorted, disjoint and non-adjacent.
    @Test func randomHeadersMatchAByteSetModel() {
        let seed = UInt64.random(in: 0...UInt64(UInt32.max))
        print("ByteRangesTests seed \(seed)")
        var rng = SeededRandom(seed: seed)
        for _ in 0..<3000 {
            let size = UInt64.random(in: 0...300, using: &rng)
            var specs: [String] = []
            var wanted = Set<UInt64>()
            for _ in 0..<Int.random(in: 1...5, using: &rng) {
                switch Int.random(in: 0..<3, using: &rng) {
                case 0:
                    let first = UInt64.random(in: 0...320, using: &rng), last = first + UInt64.random(in: 0...80, using: &rng)
                    specs.append("\(first)-\(last)")
                    if first < size { wanted.formUnion(first...min(last, size - 1)) }
                case 1:
                    let first = UInt64.random(in: 0...320, using: &rng)
                    specs.append("\(first)-")
                    if first < size { wanted.formUnion(first..<size) }
                default:
                    let length = UInt64.random(in: 0...320, using: &rng)
                    specs.append("-\(length)")
                    if length > 0, size > 0 { wanted.formUnion((size - min(length, size))..<size) }
                }
            }
            let header = "bytes=" + specs.joined(separator: ",")
            switch ByteRanges.resolve(header, size: size, maxRanges: 16) {
            case .partial(let ranges):
                #expect(Set(ranges.flatMap { Array($0) }) == wanted, "\(header) size \(size)")
                for (a, b) in zip(ranges, ranges.dropFirst()) { #expect(a.upperBound < b.lowerBound, "\(header)") }
            case .unsatisfiable:
                #expect(wanted.isEmpty, "\(header) size \(size)")
            default:
                Issue.record("unexpected resolution of \(header)")
            }
        }
    }

    @Test func multipartLengthIsExact() {
        let parts = MultipartByteRanges(ranges: [0..<10, 20..<25], size: 100, contentType: "application/octet-stream",
                                        boundary: "b")
        var body = ""
        for (header, range) in zip(parts.partHeaders, parts.ranges) { body += header + String(repeating: "x", count: range.count) }
        body += parts.closing
        #expect(UInt64(body.utf8.count) == parts.contentLength)
        #expect(body.hasPrefix("--b\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 0-9/100\r\n\r\n"))
        #expect(body.hasSuffix("\r\n--b--\r\n"))
    }
}
