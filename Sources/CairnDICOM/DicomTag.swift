/// A data element tag: (group, element).
public struct DicomTag: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let value: UInt32

    public init(_ group: UInt16, _ element: UInt16) { value = UInt32(group) << 16 | UInt32(element) }
    public init(value: UInt32) { self.value = value }

    public var group: UInt16 { UInt16(value >> 16) }
    public var element: UInt16 { UInt16(value & 0xFFFF) }
    /// Odd groups are private (other than the illegal 0001-0007 and FFFF).
    public var isPrivate: Bool { group & 1 == 1 }
    /// (gggg,0010-00FF) in a private group reserves a block for a private creator.
    public var isPrivateCreator: Bool { isPrivate && (0x0010...0x00FF).contains(element) }
    public var isGroupLength: Bool { element == 0 }

    /// `GGGGEEEE`, the key form of the DICOM JSON model.
    public var hex: String {
        let digits = Array("0123456789ABCDEF".utf8)
        var out = [UInt8](repeating: 0, count: 8)
        for i in 0..<8 { out[i] = digits[Int((value >> UInt32(28 - 4 * i)) & 0xF)] }
        return String(decoding: out, as: UTF8.self)
    }

    public var description: String {
        let h = hex
        return "(\(h.prefix(4)),\(h.suffix(4)))"
    }

    public static func < (a: DicomTag, b: DicomTag) -> Bool { a.value < b.value }

    /// `(gggg,eeee)` as `description` writes it (hex, either case); nil for anything else.
    public init?(parsing text: String) {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        guard text.hasPrefix("("), text.hasSuffix(")"), parts.count == 2, parts[0].count == 5, parts[1].count == 5,
              let group = UInt16(parts[0].dropFirst(), radix: 16), let element = UInt16(parts[1].dropLast(), radix: 16)
        else { return nil }
        self.init(group, element)
    }

    public static let item = DicomTag(0xFFFE, 0xE000)
    public static let itemDelimitation = DicomTag(0xFFFE, 0xE00D)
    public static let sequenceDelimitation = DicomTag(0xFFFE, 0xE0DD)
    public static let transferSyntaxUID = DicomTag(0x0002, 0x0010)
    public static let specificCharacterSet = DicomTag(0x0008, 0x0005)
    public static let pixelData = DicomTag(0x7FE0, 0x0010)
    public static let extendedOffsetTable = DicomTag(0x7FE0, 0x0001)
    public static let extendedOffsetTableLengths = DicomTag(0x7FE0, 0x0002)
}
