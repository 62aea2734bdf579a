import Glibc

/// Decodes text values per Specific Character Set (0008,0005), PS3.3 C.12.1.1.2 and PS3.5 6.1:
/// single-byte sets (ISO_IR 100 ... 166), UTF-8 (ISO_IR 192), GB18030/GBK, and ISO 2022 code
/// extensions, where escape sequences switch the character set inside a value. Non-ASCII sets
/// go through iconv.
public struct CharacterSetDecoder: Sendable, Equatable {
    /// The declared terms, one per value of Specific Character Set (the first is the default).
    public var terms: [String]

    public static let `default` = CharacterSetDecoder(terms: [""])

    public init(terms: [String]) { self.terms = terms.isEmpty ? [""] : terms }

    init(specificCharacterSet bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        terms = text.split(separator: "\\", omittingEmptySubsequences: false).map {
            String($0.drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " || $0 == "\0" }).reversed())
        }
        if terms.isEmpty { terms = [""] }
    }

    /// Whether a term is one of PS3.3 C.12.1.1.2's defined terms (the others decode as Latin-1).
    static func isDefinedTerm(_ term: String) -> Bool {
        term.isEmpty || term == "ISO_IR 6" || term == "ISO 2022 IR 6" || encoding(for: term) != "ISO-8859-1"
            || term == "ISO_IR 100" || term == "ISO 2022 IR 100"
    }

    /// iconv's name for a defined term (nil: ASCII).
    static func encoding(for term: String) -> String? {
        switch term {
        case "", "ISO_IR 6", "ISO 2022 IR 6": return nil
        case "ISO_IR 100", "ISO 2022 IR 100": return "ISO-8859-1"
        case "ISO_IR 101", "ISO 2022 IR 101": return "ISO-8859-2"
        case "ISO_IR 109", "ISO 2022 IR 109": return "ISO-8859-3"
        case "ISO_IR 110", "ISO 2022 IR 110": return "ISO-8859-4"
        case "ISO_IR 144", "ISO 2022 IR 144": return "ISO-8859-5"
        case "ISO_IR 127", "ISO 2022 IR 127": return "ISO-8859-6"
        case "ISO_IR 126", "ISO 2022 IR 126": return "ISO-8859-7"
        case "ISO_IR 138", "ISO 2022 IR 138": return "ISO-8859-8"
        case "ISO_IR 148", "ISO 2022 IR 148": return "ISO-8859-9"
        case "ISO_IR 203", "ISO 2022 IR 203": return "ISO-8859-15"
        case "ISO_IR 13", "ISO 2022 IR 13": return "SHIFT_JIS"
        case "ISO_IR 166", "ISO 2022 IR 166": return "TIS-620"
        case "ISO 2022 IR 87": return "ISO-2022-JP"
        case "ISO 2022 IR 159": return "ISO-2022-JP-1"
        case "ISO 2022 IR 149": return "EUC-KR"
        case "ISO 2022 IR 58": return "GB2312"
        case "ISO_IR 192": return "UTF-8"
        case "GB18030": return "GB18030"
        case "GBK": return "GBK"
        default: return "ISO-8859-1"
        }
    }

    public func decode(_ bytes: ArraySlice<UInt8>) -> String {
        if bytes.allSatisfy({ $0 < 0x80 }) && !bytes.contains(0x1B) {
            return String(decoding: bytes, as: UTF8.self)
        }
        let first = terms[0]
        if first == "ISO_IR 192" { return String(decoding: bytes, as: UTF8.self) }
        if !terms.contains(where: { $0.hasPrefix("ISO 2022") }) {
            return Self.convert(bytes, from: Self.encoding(for: first)) ?? String(decoding: bytes, as: UTF8.self)
        }
        return decodeISO2022(bytes)
    }

    /// Splits at ESC sequences and decodes each run in the set the sequence designates.
    private func decodeISO2022(_ bytes: ArraySlice<UInt8>) -> String {
        var out = ""
        var current = Self.encoding(for: terms[0])
        var run: [UInt8] = []
        var i = bytes.startIndex
        func flush() {
            if !run.isEmpty { out += Self.convert(run[...], from: current) ?? String(decoding: run, as: UTF8.self) }
            run.removeAll(keepingCapacity: true)
        }
        while i < bytes.endIndex {
            if bytes[i] == 0x1B, let (encoding, length, keepEscape) = Self.escape(bytes[i...]) {
                flush()
                current = encoding
                if keepEscape { run.append(contentsOf: bytes[i..<i + length]) }
                i += length
                continue
            }
            run.append(bytes[i])
            i += 1
        }
        flush()
        return out
    }

    /// The encoding an escape sequence switches to; JIS X 0208 keeps its escape because iconv's ISO-2022-JP needs it.
    private static func escape(_ bytes: ArraySlice<UInt8>) -> (String?, Int, Bool)? {
        let s = Array(bytes.prefix(4))
        func matches(_ pattern: [UInt8]) -> Bool { s.count >= pattern.count && Array(s[0..<pattern.count]) == pattern }
        if matches([0x1B, 0x28, 0x42]) { return (nil, 3, false) }                  // ASCII (IR 6)
        if matches([0x1B, 0x2D, 0x41]) { return ("ISO-8859-1", 3, false) }         // IR 100
        if matches([0x1B, 0x2D, 0x42]) { return ("ISO-8859-2", 3, false) }         // IR 101
        if matches([0x1B, 0x2D, 0x4C]) { return ("ISO-8859-5", 3, false) }         // IR 144
        if matches([0x1B, 0x2D, 0x47]) { return ("ISO-8859-6", 3, false) }         // IR 127
        if matches([0x1B, 0x2D, 0x46]) { return ("ISO-8859-7", 3, false) }         // IR 126
        if matches([0x1B, 0x2D, 0x48]) { return ("ISO-8859-8", 3, false) }         // IR 138
        if matches([0x1B, 0x2D, 0x4D]) { return ("ISO-8859-9", 3, false) }         // IR 148
        if matches([0x1B, 0x29, 0x49]) { return ("SHIFT_JIS", 3, false) }          // IR 13 katakana (G1)
        if matches([0x1B, 0x28, 0x4A]) { return ("SHIFT_JIS", 3, false) }          // IR 14 romaji (G0)
        if matches([0x1B, 0x24, 0x42]) { return ("ISO-2022-JP", 3, true) }         // IR 87
        if matches([0x1B, 0x24, 0x28, 0x44]) { return ("ISO-2022-JP-1", 4, true) } // IR 159
        if matches([0x1B, 0x24, 0x29, 0x43]) { return ("EUC-KR", 4, false) }       // IR 149
        if matches([0x1B, 0x24, 0x29, 0x41]) { return ("GB2312", 4, false) }       // IR 58
        return nil
    }

    static func convert(_ bytes: ArraySlice<UInt8>, from encoding: String?) -> String? {
        guard let encoding, encoding != "UTF-8" else { return String(decoding: bytes, as: UTF8.self) }
        if encoding == "ISO-8859-1" {
            return String(String.UnicodeScalarView(bytes.map { Unicode.Scalar($0) }))
        }
        let converter = iconv_open("UTF-8", encoding)
        guard let converter, converter != iconv_t(bitPattern: -1) else { return nil }
        defer { iconv_close(converter) }
        var input = Array(bytes)
        var output = [UInt8](repeating: 0, count: input.count * 4 + 16)
        let outputCount = output.count
        let written: Int? = input.withUnsafeMutableBytes { inBuffer in
            output.withUnsafeMutableBytes { outBuffer in
                var inPointer = inBuffer.baseAddress?.assumingMemoryBound(to: CChar.self)
                var outPointer = outBuffer.baseAddress?.assumingMemoryBound(to: CChar.self)
                var inLeft = inBuffer.count
                var outLeft = outBuffer.count
                guard iconv(converter, &inPointer, &inLeft, &outPointer, &outLeft) != -1 else { return nil }
                // Flush any shift state (ISO-2022-JP returning to ASCII).
                _ = iconv(converter, nil, nil, &outPointer, &outLeft)
                return outputCount - outLeft
            }
        }
        guard let written else { return nil }
        return String(decoding: output[..<written], as: UTF8.self)
    }
}
