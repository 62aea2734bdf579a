import Foundation

/// The DICOM JSON model (PS3.18 Annex F.2) of a data set, without group lengths. Bulk data (pixel
/// data, the binary VRs OB, OD, OF, OL, OV, OW, UN, and values too large to load) is left out, or,
/// for DICOMweb metadata, referenced by a BulkDataURI (small binary values go inline, base64).
public enum DicomJSON {
    /// Makes the BulkDataURI of a value from its byte range (offset, length) in the parsed stream.
    public typealias BulkDataURI = (_ offset: Int, _ length: Int) -> String

    public static func encode(_ dataSet: DataSet, bulkDataURI: BulkDataURI? = nil) -> String {
        var out = JSONBytes()
        write(dataSet, bulkDataURI: bulkDataURI, to: &out)
        return out.text
    }

    /// The members of the object only (`"tag":{…},…`, no braces), for splicing several together.
    public static func members(_ dataSet: DataSet) -> String {
        var out = JSONBytes()
        write(dataSet, bulkDataURI: nil, to: &out)
        out.bytes.removeFirst()
        out.bytes.removeLast()
        return out.text
    }

    /// The JSON text being built, as UTF-8 bytes: appending to a byte array is several times
    /// cheaper than growing a String, which a 1,000-instance metadata response showed.
    struct JSONBytes {
        var bytes: [UInt8] = []

        init() { bytes.reserveCapacity(8192) }

        var text: String { String(decoding: bytes, as: UTF8.self) }

        mutating func append(_ text: String) {
            var text = text
            text.withUTF8 { bytes.append(contentsOf: $0) }
        }

        mutating func append(_ byte: UInt8) { bytes.append(byte) }

        /// A JSON string: quotes, backslashes and control characters escaped, the rest as is (UTF-8).
        mutating func appendQuoted(_ text: String) {
            bytes.append(34)
            var text = text
            text.withUTF8 { utf8 in
                for byte in utf8 {
                    switch byte {
                    case 34: bytes.append(92); bytes.append(34)
                    case 92: bytes.append(92); bytes.append(92)
                    case 10: bytes.append(92); bytes.append(110)
                    case 13: bytes.append(92); bytes.append(114)
                    case 9: bytes.append(92); bytes.append(116)
                    case 0..<32:
                        let hex = Array("0123456789abcdef".utf8)
                        bytes.append(contentsOf: [92, 117, 48, 48, hex[Int(byte >> 4)], hex[Int(byte & 15)]])
                    default: bytes.append(byte)
                    }
                }
            }
            bytes.append(34)
        }
    }

    static func write(_ dataSet: DataSet, bulkDataURI: BulkDataURI?, to out: inout JSONBytes) {
        out.append(123)
        var first = true
        let decoder = ValueDecoder(dataSet: dataSet)
        for element in dataSet.elements.sorted(by: { $0.tag < $1.tag }) where !element.tag.isGroupLength {
            let bulk = bulkValue(element)
            if bulk != nil && bulkDataURI == nil { continue }
            if !first { out.append(44) }
            first = false
            out.append(34)
            out.append(element.tag.hex)
            out.append("\":{\"vr\":\"")
            out.append(element.vr.rawValue)
            out.append(34)
            switch bulk {
            case .inline(let bytes)?:
                if !bytes.isEmpty {
                    out.append(",\"InlineBinary\":")
                    out.appendQuoted(Data(bytes).base64EncodedString())
                }
            case .range(let offset, let length)?:
                if let bulkDataURI {
                    out.append(",\"BulkDataURI\":")
                    out.appendQuoted(bulkDataURI(offset, length))
                }
            case nil:
                writeValue(element, bulkDataURI: bulkDataURI, decoder: decoder, to: &out)
            }
            out.append(125)
        }
        out.append(125)
    }

    private enum BulkValue {
        case inline([UInt8])
        case range(offset: Int, length: Int)
    }

    /// Pixel Data (native or encapsulated), binary VRs and values too large to load are bulk data.
    private static func bulkValue(_ element: DataElement) -> BulkValue? {
        switch element.value {
        case .bulk(let offset, let length): return .range(offset: offset, length: length)
        case .encapsulated(let pixels):
            // The whole value: the Basic Offset Table item, the fragment items and the delimiter.
            let itemsEnd = pixels.fragments.last.map { $0.valueOffset + $0.length }
                ?? element.valueOffset + 8 + 4 * pixels.basicOffsetTable.count
            return .range(offset: element.valueOffset, length: itemsEnd + 8 - element.valueOffset)
        case .bytes(let bytes): return element.vr.isBulk || element.tag == .pixelData ? .inline(bytes) : nil
        case .sequence: return nil
        }
    }

    /// One value as JSON: nil for an empty value (`null` in a list, nothing when all are empty).
    private enum JSONValueText {
        case raw(String)
        case string(String)
        case personName(String)
    }

    private static func writeValue(_ element: DataElement, bulkDataURI: BulkDataURI?, decoder: ValueDecoder,
                                   to out: inout JSONBytes) {
        var values: [JSONValueText?] = []
        switch element.value {
        case .sequence(let items):
            if items.isEmpty { return }
            out.append(",\"Value\":[")
            for (index, item) in items.enumerated() {
                if index > 0 { out.append(44) }
                write(item, bulkDataURI: bulkDataURI, to: &out)
            }
            out.append(93)
            return
        case .bytes:
            if element.vr == .PN {
                values = decoder.strings(element)?.map { $0.isEmpty ? nil : .personName($0) } ?? []
            } else if element.vr == .AT {
                values = decoder.tags(element)?.map { .string($0.hex) } ?? []
            } else if element.vr == .IS || element.vr == .DS {
                values = decoder.strings(element)?.map { text -> JSONValueText? in
                    if text.isEmpty { return nil }
                    if element.vr == .IS, let value = Int64(text) { return .raw(String(value)) }
                    if let value = Double(text), value.isFinite { return .raw(numberText(value)) }
                    return .string(text)
                } ?? []
            } else if let numbers = decoder.numbers(element) {
                values = numbers.map { number in
                    guard case .double(let v) = number else { return .raw(number.description) }
                    return v.isFinite ? .raw(numberText(v)) : .string(String(v))
                }
            } else if let strings = decoder.strings(element) {
                values = strings.map { $0.isEmpty ? nil : .string($0) }
            }
        default:
            return
        }
        if values.allSatisfy({ $0 == nil }) { return }
        out.append(",\"Value\":[")
        for (index, value) in values.enumerated() {
            if index > 0 { out.append(44) }
            switch value {
            case nil: out.append("null")
            case .raw(let text)?: out.append(text)
            case .string(let text)?: out.appendQuoted(text)
            case .personName(let text)?: writePersonName(text, to: &out)
            }
        }
        out.append(93)
    }

    private static func numberText(_ value: Double) -> String {
        if value == value.rounded() && abs(value) < 1e15 { return String(Int64(value)) + ".0" }
        return String(value)
    }

    /// PN: up to three component groups (alphabetic, ideographic, phonetic) separated by '='.
    private static func writePersonName(_ text: String, to out: inout JSONBytes) {
        let groups = text.split(separator: "=", omittingEmptySubsequences: false)
        out.append(123)
        var first = true
        for (name, group) in zip(["Alphabetic", "Ideographic", "Phonetic"], groups) where !group.isEmpty {
            if !first { out.append(44) }
            first = false
            out.appendQuoted(name)
            out.append(58)
            out.appendQuoted(String(group))
        }
        out.append(125)
    }

    static func quoted(_ text: String) -> String {
        var out = JSONBytes()
        out.appendQuoted(text)
        return out.text
    }
}

extension DicomJSON {
    /// One member `"GGGGEEEE":{"vr":…,"Value":[…]}` with string values (quoted) or numbers (as given).
    public static func member(_ tag: DicomTag, vr: VR, strings: [String]) -> String {
        if strings.isEmpty { return "\"\(tag.hex)\":{\"vr\":\"\(vr.rawValue)\"}" }
        return "\"\(tag.hex)\":{\"vr\":\"\(vr.rawValue)\",\"Value\":[" + strings.map(quoted).joined(separator: ",") + "]}"
    }

    public static func member(_ tag: DicomTag, vr: VR, numbers: [Int]) -> String {
        "\"\(tag.hex)\":{\"vr\":\"\(vr.rawValue)\",\"Value\":[" + numbers.map(String.init).joined(separator: ",") + "]}"
    }

    /// A person name given as its alphabetic group.
    public static func member(_ tag: DicomTag, personName: String) -> String {
        "\"\(tag.hex)\":{\"vr\":\"PN\",\"Value\":[{\"Alphabetic\":" + quoted(personName) + "}]}"
    }

    /// A sequence of items, each given as its members.
    public static func member(_ tag: DicomTag, items: [[String]]) -> String {
        "\"\(tag.hex)\":{\"vr\":\"SQ\",\"Value\":[" + items.map { "{" + $0.joined(separator: ",") + "}" }.joined(separator: ",") + "]}"
    }
}
