/// Why a byte stream is not a readable DICOM file; always says where.
public enum DicomError: Error, CustomStringConvertible, Equatable, Sendable {
    case notDicom(String)
    case truncated(offset: Int, needed: Int, size: Int)
    case valuePastEnd(tag: DicomTag, offset: Int, length: UInt64, end: Int)
    case invalidVR(tag: DicomTag, offset: Int, bytes: [UInt8])
    case unexpectedTag(tag: DicomTag, offset: Int, expected: String)
    case undefinedLength(tag: DicomTag, vr: VR, offset: Int)
    case tooDeep(offset: Int, limit: Int)
    case tooManyElements(limit: Int)
    case deflate(String)
    case io(String)

    public var description: String {
        switch self {
        case .notDicom(let why): return "not a DICOM file: \(why)"
        case .truncated(let offset, let needed, let size):
            return "truncated: \(needed) bytes needed at offset \(offset), the data ends at \(size)"
        case .valuePastEnd(let tag, let offset, let length, let end):
            return "\(tag) at offset \(offset): value length \(length) runs past the end of its container (\(end))"
        case .invalidVR(let tag, let offset, let bytes):
            return "\(tag) at offset \(offset): invalid VR bytes \(bytes.map { String($0, radix: 16) })"
        case .unexpectedTag(let tag, let offset, let expected):
            return "\(tag) at offset \(offset): expected \(expected)"
        case .undefinedLength(let tag, let vr, let offset):
            return "\(tag) \(vr.rawValue) at offset \(offset): undefined length is only allowed for sequences and pixel data"
        case .tooDeep(let offset, let limit): return "sequences nested deeper than \(limit) at offset \(offset)"
        case .tooManyElements(let limit): return "more than \(limit) data elements"
        case .deflate(let why): return "deflated data set: \(why)"
        case .io(let why): return why
        }
    }
}
