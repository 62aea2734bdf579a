/// A readable dump in the spirit of dcmtk's dcmdump: one line per element, nested by indentation.
public enum DicomTextDump {
    public static func render(_ file: DicomFile) -> String {
        var out = "# Dicom-File-Format\n"
        if let meta = file.meta {
            out += "\n# Dicom-Meta-Information-Header\n# Used TransferSyntax: Little Endian Explicit\n"
            write(meta, indent: 0, to: &out)
        }
        out += "\n# Dicom-Data-Set\n# Used TransferSyntax: \(file.transferSyntax.uid)\n"
        write(file.dataSet, indent: 0, to: &out)
        return out
    }

    static func write(_ dataSet: DataSet, indent: Int, to out: inout String) {
        let decoder = ValueDecoder(dataSet: dataSet)
        let pad = String(repeating: "  ", count: indent)
        for element in dataSet.elements {
            let keyword = DataDictionary.standard.keyword(for: element.tag) ?? "Unknown Tag & Data"
            let lengthText = element.length.map(String.init) ?? "u/l"
            var shown: String
            switch element.value {
            case .sequence(let items):
                out += "\(pad)\(element.tag.description.lowercased()) SQ (Sequence with \(element.length == nil ? "undefined" : "explicit") length #=\(items.count)) # \(lengthText), 1 \(keyword)\n"
                for item in items {
                    out += "\(pad)  (fffe,e000) na (Item #=\(item.elements.count))\n"
                    write(item, indent: indent + 2, to: &out)
                    out += "\(pad)  (fffe,e00d) na (ItemDelimitationItem)\n"
                }
                out += "\(pad)(fffe,e0dd) na (SequenceDelimitationItem)\n"
                continue
            case .encapsulated(let pixels):
                shown = "(PixelSequence #=\(pixels.fragments.count + 1): offset table of \(pixels.basicOffsetTable.count) entries, \(pixels.fragments.count) fragments)"
            case .bulk(let offset, let length):
                shown = "(not loaded: \(length) bytes at offset \(offset))"
            case .bytes(let bytes):
                if let strings = decoder.strings(element) {
                    shown = "[" + strings.joined(separator: "\\") + "]"
                } else if let tags = decoder.tags(element) {
                    shown = tags.map { $0.description.lowercased() }.joined(separator: "\\")
                } else if let numbers = decoder.numbers(element) {
                    shown = numbers.prefix(16).map(\.description).joined(separator: "\\") + (numbers.count > 16 ? "\\..." : "")
                } else {
                    shown = bytes.prefix(16).map { b in (b < 16 ? "0" : "") + String(b, radix: 16) }.joined(separator: "\\")
                        + (bytes.count > 16 ? "\\..." : "")
                }
                if bytes.isEmpty { shown = "(no value available)" }
            }
            let head = "\(pad)\(element.tag.description.lowercased()) \(element.vr.rawValue) \(shown)"
            let column = max(1, 56 - head.count)
            out += head + String(repeating: " ", count: column) + "# \(lengthText), \(keyword)\n"
        }
    }
}
