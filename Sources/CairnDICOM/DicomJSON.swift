import Foundation

/// The DICOM JSON model (PS3.18 Annex F.2) of a data set, without group lengths. Bulk data (pixel
/// data, the binary VRs OB, OD, OF, OL, OV, OW, UN, and values too large to load) is left out, or,
/// for DICOMweb metadata, referenced by a BulkDataURI (small binary values go inline, base64).
public enum DicomJSON {
    /// Makes the BulkDataURI of a value from its byte range (offset, length) in the parsed stream.
    public typealias BulkDataURI = (_ offset: Int, _ length: Int) -> String

    public static func encode(_ dataSet: DataSet, bulkDataURI: BulkDataURI? = nil) -> String {
        var out = ""
        out.reserveCapacity(4096)
        write(dataSet, bulkDataURI: bulkDataURI, to: &out)
        return out
    }

    /// The members of the object only (`"tag":{…},…`, no braces), for splicing several together.
    public static func members(_ dataSet: DataSet) -> String {
        var out = encode(dataSet)
        out.removeFirst()
        out.removeLast()
        return out
    }

    static func write(_ dataSet: DataSet, bulkDataURI: BulkDataURI?, to out: inout String) {
        out += "{"
        var first = true
        let decoder = ValueDecoder(dataSet: dataSet)
        for element in dataSet.elements.sorted(by: { $0.tag < $1.tag }) where !element.tag.isGroupLength {
            let bulk = bulkValue(element)
            if bulk != nil && bulkDataURI == nil { continue }
            if !first { out += "," }
            first = false
            out += "\"\(element.tag.hex)\":{\"vr\":\"\(element.vr.rawValue)\""
            switch bulk {
            case .inline(let bytes)?:
                if !bytes.isEmpty { out += ",\"InlineBinary\":\"" + Data(bytes).base64EncodedString() + "\"" }
            case .range(let offset, let length)?:
                if let bulkDataURI { out += ",\"BulkDataURI\":" + quoted(bulkDataURI(offset, length)) }
            case nil:
                writeValue(element, bulkDataURI: bulkDataURI, decoder: decoder, to: &out)
            }
            out += "}"
        }
        out += "}"
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

    private static func writeValue(_ element: DataElement, bulkDataURI: BulkDataURI?, decoder: ValueDecoder,
                                   to out: inout String) {
        var values: [String] = []
        switch element.value {
        case .sequence(let items):
            if items.isEmpty { return }
            out += ",\"Value\":["
            for (index, item) in items.enumerated() {
                if index > 0 { out += "," }
                write(item, bulkDataURI: bulkDataURI, to: &out)
            }
            out += "]"
            return
        case .bytes:
            if element.vr == .PN {
                values = decoder.strings(element)?.map(personName) ?? []
            } else if element.vr == .AT {
                values = decoder.tags(element)?.map { "\"\($0.hex)\"" } ?? []
            } else if element.vr == .IS || element.vr == .DS {
                values = decoder.strings(element)?.map { text in
                    if text.isEmpty { return "null" }
                    if element.vr == .IS, let value = Int64(text) { return String(value) }
                    if let value = Double(text), value.isFinite { return numberText(value) }
                    return quoted(text)
                } ?? []
            } else if let numbers = decoder.numbers(element) {
                values = numbers.map { number in
                    guard case .double(let v) = number else { return number.description }
                    return v.isFinite ? numberText(v) : quoted(String(v))
                }
            } else if let strings = decoder.strings(element) {
                values = strings.map { $0.isEmpty ? "null" : quoted($0) }
            }
        default:
            return
        }
        if values.isEmpty || values.allSatisfy({ $0 == "null" }) { return }
        out += ",\"Value\":[" + values.joined(separator: ",") + "]"
    }

    private static func numberText(_ value: Double) -> String {
        if value == value.rounded() && abs(value) < 1e15 { return String(Int64(value)) + ".0" }
        return String(value)
    }

    /// PN: up to three component groups (alphabetic, ideographic, phonetic) separated by '='.
    private static func personName(_ text: String) -> String {
        if text.isEmpty { return "null" }
        let groups = text.split(separator: "=", omittingEmptySubsequences: false)
        var parts: [String] = []
        for (name, group) in zip(["Alphabetic", "Ideographic", "Phonetic"], groups) where !group.isEmpty {
            parts.append("\"\(name)\":" + quoted(String(group)))
        }
        return "{" + parts.joined(separator: ",") + "}"
    }

    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
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
