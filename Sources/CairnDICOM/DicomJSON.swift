/// The DICOM JSON model (PS3.18 Annex F.2) of a data set. Bulk data (pixel data and the binary
/// VRs OB, OD, OF, OL, OV, OW, UN) is left out, as are group lengths.
public enum DicomJSON {
    public static func encode(_ dataSet: DataSet) -> String {
        var out = ""
        out.reserveCapacity(4096)
        write(dataSet, to: &out)
        return out
    }

    static func write(_ dataSet: DataSet, to out: inout String) {
        out += "{"
        var first = true
        let decoder = ValueDecoder(dataSet: dataSet)
        for element in dataSet.elements.sorted(by: { $0.tag < $1.tag }) {
            // Pixel Data (native or encapsulated), binary VRs and values too large to load are bulk data.
            if element.tag.isGroupLength || element.vr.isBulk || element.tag == .pixelData { continue }
            if case .bulk = element.value { continue }
            if !first { out += "," }
            first = false
            out += "\"\(element.tag.hex)\":{\"vr\":\"\(element.vr.rawValue)\""
            writeValue(element, decoder: decoder, to: &out)
            out += "}"
        }
        out += "}"
    }

    private static func writeValue(_ element: DataElement, decoder: ValueDecoder, to out: inout String) {
        var values: [String] = []
        switch element.value {
        case .sequence(let items):
            if items.isEmpty { return }
            out += ",\"Value\":["
            for (index, item) in items.enumerated() {
                if index > 0 { out += "," }
                write(item, to: &out)
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
