/// A decoded number: kept in the type that holds it exactly.
public enum DicomNumber: Sendable, Equatable, CustomStringConvertible {
    case int(Int64)
    case uint(UInt64)
    case double(Double)

    public var description: String {
        switch self {
        case .int(let value): return String(value)
        case .uint(let value): return String(value)
        case .double(let value): return String(value)
        }
    }
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
            let raw = unsigned(bytes, at: i, size: size)
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
            out.append(DicomTag(UInt16(unsigned(bytes, at: i, size: 2)), UInt16(unsigned(bytes, at: i + 2, size: 2))))
            i += 4
        }
        return out
    }

    /// An unsigned integer of `size` bytes at `at`, in the data set's byte order.
    private func unsigned(_ bytes: [UInt8], at i: Int, size: Int) -> UInt64 {
        var value: UInt64 = 0
        for k in 0..<size {
            value = value << 8 | UInt64(bytes[i + (dataSet.bigEndian ? k : size - 1 - k)])
        }
        return value
    }
}
