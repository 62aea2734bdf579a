/// A decoded number: kept in the type that holds it exactly.
public enum DicomNumber: Sendable, Equatable {
    case int(Int64)
    case uint(UInt64)
    case double(Double)
}

/// Turns element bytes into strings and numbers, per VR, byte order and character set.
struct ValueDecoder {
    let dataSet: DataSet

    func strings(_ element: DataElement) -> [String]? {
        guard element.vr.isString, case .bytes(let bytes) = element.value else { return nil }
        if bytes.isEmpty { return [] }
        let parts: [ArraySlice<UInt8>] = element.vr.isSingleValuedText
            ? [bytes[...]] : bytes.split(separator: 0x5C, omittingEmptySubsequences: false)
        return parts.map { part in
            let text = element.vr.usesCharacterSet || part.contains(where: { $0 >= 0x80 })
                ? dataSet.characterSet.decode(part) : String(decoding: part, as: UTF8.self)
            return Self.trim(text, vr: element.vr)
        }
    }

    /// Padding is insignificant: trailing spaces (and NULs, which UI pads with) always; leading
    /// spaces too except in the free-text VRs (PS3.5 6.2).
    static func trim(_ text: String, vr: VR) -> String {
        var scalars = Substring(text)
        while let last = scalars.last, last == " " || last == "\0" { scalars.removeLast() }
        if !(vr == .LT || vr == .ST || vr == .UT || vr == .UC) {
            while let first = scalars.first, first == " " { scalars.removeFirst() }
        }
        return String(scalars)
    }

    func numbers(_ element: DataElement) -> [DicomNumber]? {
        if element.vr == .IS || element.vr == .DS {
            return strings(element)?.compactMap { text -> DicomNumber? in
                if text.isEmpty { return nil }
                if element.vr == .IS, let value = Int64(text) { return .int(value) }
                return Double(text).map { .double($0) }
            }
        }
        guard let size = element.vr.numberSize, element.vr != .AT, case .bytes(let bytes) = element.value else { return nil }
        var out: [DicomNumber] = []
        out.reserveCapacity(bytes.count / size)
        var i = 0
        while i + size <= bytes.count {
            var raw: UInt64 = 0
            for k in 0..<size {
                let byte = UInt64(bytes[i + (dataSet.bigEndian ? k : size - 1 - k)])
                raw = raw << 8 | byte
            }
            switch element.vr {
            case .US, .UL, .UV: out.append(.uint(raw))
            case .SS: out.append(.int(Int64(Int16(truncatingIfNeeded: raw))))
            case .SL: out.append(.int(Int64(Int32(truncatingIfNeeded: raw))))
            case .SV: out.append(.int(Int64(bitPattern: raw)))
            case .FL: out.append(.double(Double(Float(bitPattern: UInt32(truncatingIfNeeded: raw)))))
            case .FD: out.append(.double(Double(bitPattern: raw)))
            default: break
            }
            i += size
        }
        return out
    }

    /// AT values as tags.
    func tags(_ element: DataElement) -> [DicomTag]? {
        guard element.vr == .AT, case .bytes(let bytes) = element.value else { return nil }
        var out: [DicomTag] = []
        var i = 0
        while i + 4 <= bytes.count {
            let group = dataSet.bigEndian ? UInt16(bytes[i]) << 8 | UInt16(bytes[i + 1]) : UInt16(bytes[i + 1]) << 8 | UInt16(bytes[i])
            let element = dataSet.bigEndian ? UInt16(bytes[i + 2]) << 8 | UInt16(bytes[i + 3]) : UInt16(bytes[i + 3]) << 8 | UInt16(bytes[i + 2])
            out.append(DicomTag(group, element))
            i += 4
        }
        return out
    }
}
