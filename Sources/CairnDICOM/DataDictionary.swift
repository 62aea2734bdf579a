/// The standard data dictionary (PS3.6), generated from dcmtk's dicom.dic by
/// Tools/gen/make_dictionary.py and parsed once on first use.
public struct DataDictionary: Sendable {
    public struct Entry: Sendable {
        /// A PS3.5 VR, or one of dcmtk's ambiguous codes: xs (US/SS), ox/px (OB/OW), lt (US/OW), up (UL).
        public var vrCode: String
        public var vm: String
        public var keyword: String
        public var retired: Bool
    }

    private struct RangeEntry: Sendable {
        var low: UInt32
        var high: UInt32
        var entry: Entry
    }

    private let exact: [UInt32: Entry]
    private let ranges: [RangeEntry]
    private let byKeyword: [String: DicomTag]

    public static let standard = DataDictionary()

    private init() {
        var exact: [UInt32: Entry] = [:]
        var byKeyword: [String: DicomTag] = [:]
        exact.reserveCapacity(5000)
        for line in Self.exactSource.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count == 5, let tag = UInt32(f[0], radix: 16) else { continue }
            let entry = Entry(vrCode: String(f[1]), vm: String(f[2]), keyword: String(f[3]), retired: f[4] == "1")
            exact[tag] = entry
            byKeyword[entry.keyword] = DicomTag(value: tag)
        }
        var ranges: [RangeEntry] = []
        for line in Self.rangeSource.split(separator: "\n") {
            let f = line.split(separator: " ")
            let bounds = f.first?.split(separator: "-") ?? []
            guard f.count == 5, bounds.count == 2, let low = UInt32(bounds[0], radix: 16),
                  let high = UInt32(bounds[1], radix: 16) else { continue }
            ranges.append(RangeEntry(low: low, high: high,
                                     entry: Entry(vrCode: String(f[1]), vm: String(f[2]), keyword: String(f[3]), retired: f[4] == "1")))
        }
        self.exact = exact
        self.ranges = ranges
        self.byKeyword = byKeyword
    }

    public func entry(for tag: DicomTag) -> Entry? {
        if let entry = exact[tag.value] { return entry }
        // Repeating groups (60xx overlays, 50xx curves) match on even groups in range, same element.
        for range in ranges where tag.value >= range.low && tag.value <= range.high {
            let groupSpan = range.low >> 16 != range.high >> 16
            if groupSpan {
                if tag.element == UInt16(range.low & 0xFFFF) && tag.group & 1 == 0 { return range.entry }
            } else {
                return range.entry
            }
        }
        return nil
    }

    public func tag(forKeyword keyword: String) -> DicomTag? { byKeyword[keyword] }

    public func keyword(for tag: DicomTag) -> String? {
        if tag.isGroupLength { return tag.group == 0x0002 ? "FileMetaInformationGroupLength" : "GroupLength" }
        if tag.isPrivateCreator { return "PrivateCreator" }
        return entry(for: tag)?.keyword
    }
}
