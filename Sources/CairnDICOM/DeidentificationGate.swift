import Glibc

/// What the de-identification gate concluded about one file. A gated dataset stores a file only
/// when it is `.clean`, or `.notDicom` when the dataset explicitly allows files that are not DICOM.
public enum GateVerdict: Sendable, Equatable {
    /// Parsed to its end, a complete instance, no direct identifier.
    case clean
    /// Parsed, and the verifier refuses these attributes (each named by its path).
    case identifiable([DeidentificationFinding])
    /// Looks like DICOM, or is an archive, but cannot be fully checked: refused whatever the dataset allows.
    case uncheckable(String)
    /// Nothing about it looks like DICOM.
    case notDicom(String)

    /// Why a gated dataset refuses the file; nil for `.clean`.
    public func refusal(allowNonDicom: Bool) -> String? {
        switch self {
        case .clean: return nil
        case .identifiable(let findings):
            return "is not de-identified (PS3.15 Basic Profile): " + findings.map(\.description).joined(separator: "; ")
        case .uncheckable(let why): return "cannot be checked for identifiers: \(why)"
        case .notDicom(let why):
            return allowNonDicom ? nil
                : "is not DICOM (\(why)) and the dataset does not allow files that are not DICOM (dataset create --allow-non-dicom)"
        }
    }
}

/// The gate's decision and, when the file parsed, what was read (for indexing).
public struct GateInspection: Sendable {
    public var file: DicomFile?
    public var verdict: GateVerdict

    public init(file: DicomFile?, verdict: GateVerdict) {
        self.file = file
        self.verdict = verdict
    }
}

/// The de-identification gate fails closed: a file is clean only when the parser read it to its
/// end, its elements are in ascending tag order at every level (so no element can hide behind a
/// duplicate, and a wrong transfer syntax does not read as a clean file), it is a complete
/// composite instance (study, series and SOP instance UIDs; an image's whole pixel data), and the
/// verifier finds every attribute as PS3.15 Table E.1-1 asks under the dataset's policy. Anything
/// that fails to parse is `uncheckable` when any of the shapes the parser accepts, or an archive,
/// can be seen in it; otherwise `notDicom`.
public enum DeidentificationGate {
    public static func inspect(path: String, policy: DeidentificationPolicy = .strict,
                               parser: DicomParser = DicomParser()) -> GateInspection {
        do {
            let file = try parser.parse(path: path)
            // Values the parser left in place are read back from the file (not from a deflated one:
            // its offsets are into the inflated stream).
            return judge(file, policy: policy, bulk: file.offsetsAreFileOffsets ? { readRange(path, offset: $0, length: $1) } : nil,
                         head: read(path, offset: 0, upTo: 132))
        } catch {
            return GateInspection(file: nil, verdict: unreadable(prefix: readPrefix(path), size: fileSize(path), error: error))
        }
    }

    public static func inspect(bytes: [UInt8], policy: DeidentificationPolicy = .strict,
                               parser: DicomParser = DicomParser()) -> GateInspection {
        do {
            let file = try parser.parse(bytes: bytes)
            return judge(file, policy: policy, bulk: file.offsetsAreFileOffsets ? { offset, length in
                guard offset >= 0, length >= 0, offset <= bytes.count - length else { return nil }
                return Array(bytes[offset..<(offset + length)])
            } : nil, head: Array(bytes.prefix(132)))
        } catch {
            return GateInspection(file: nil, verdict: unreadable(prefix: Array(bytes.prefix(prefixLength)), size: bytes.count,
                                                                 error: error))
        }
    }

    /// How much of a file that failed to parse is searched for signs of DICOM.
    static let prefixLength = 64 * 1024

    /// `head` is the file's first 132 bytes, for its preamble (nil: not checked).
    public static func judge(_ file: DicomFile, policy: DeidentificationPolicy, bulk: BulkPrefixReader? = nil,
                             head: [UInt8]? = nil) -> GateInspection {
        if let head, let problem = preambleProblem(head) { return GateInspection(file: file, verdict: .uncheckable(problem)) }
        guard file.deflateComplete else {
            return GateInspection(file: file, verdict: .uncheckable("the deflated data set stops before its end, or bytes follow it"))
        }
        if file.bytesSkipped > 0 {
            return GateInspection(file: file, verdict: .uncheckable("\(file.bytesSkipped) bytes inside items were never read "
                + "(an item delimiter before the item's declared end)"))
        }
        if let problem = orderProblem(file.dataSet, depth: 0) ?? file.meta.flatMap({ orderProblem($0, depth: 0) }) {
            return GateInspection(file: file, verdict: .uncheckable(problem))
        }
        // What the verifier refuses is named first; undecoded values are searched in what it keeps.
        let findings = DeidentificationVerifier(policy: policy).findings(file, bulk: bulk)
        if !findings.isEmpty { return GateInspection(file: file, verdict: .identifiable(findings)) }
        if let problem = opaqueProblem(file.dataSet) ?? file.meta.flatMap(opaqueProblem) {
            return GateInspection(file: file, verdict: .uncheckable(problem))
        }
        if let missing = incompleteness(file, bulk: bulk) { return GateInspection(file: file, verdict: .uncheckable(missing)) }
        return GateInspection(file: file, verdict: .clean)
    }

    /// The 128 bytes before DICM are read by nothing that reads DICOM, so anything could be written
    /// there: they must be zero, or a TIFF header (a dual-format file's 8 bytes) and then zero.
    static func preambleProblem(_ head: [UInt8]) -> String? {
        guard head.count >= 132, Array(head[128..<132]) == Array("DICM".utf8) else { return nil }
        let tiff = head.starts(with: [0x49, 0x49, 0x2A, 0x00]) || head.starts(with: [0x4D, 0x4D, 0x00, 0x2A])
        let rest = tiff ? head[8..<128] : head[0..<128]
        if rest.allSatisfy({ $0 == 0 }) { return nil }
        return "the 128-byte preamble holds data, which nothing that reads DICOM shows and no rule can judge; zero it"
    }

    /// How many bytes after the last frame of native pixel data are read to check they are zero.
    static let trailingPixelBytesChecked = 1 << 20

    static func unreadable(prefix: [UInt8], size: Int, error: Error) -> GateVerdict {
        if let shape = leadingShape(prefix, size: size) { return .uncheckable("\(shape), but \(error)") }
        if let archive = archiveKind(prefix) { return .uncheckable("a \(archive) archive; unpack it and ingest its files") }
        if let shape = embeddedShape(prefix) { return .uncheckable("\(shape), but \(error)") }
        return .notDicom("\(error)")
    }

    /// Elements must come in strictly ascending tag order (PS3.5 7.1), in items too.
    static func orderProblem(_ dataSet: DataSet, depth: Int) -> String? {
        var previous: DicomTag?
        for element in dataSet.elements {
            if let previous, !(previous < element.tag) {
                return "\(element.tag) at offset \(element.offset) follows \(previous): elements out of order or repeated "
                    + "(damaged, or a transfer syntax that does not match the bytes)"
            }
            previous = element.tag
            if case .sequence(let items) = element.value {
                for item in items {
                    if let problem = orderProblem(item, depth: depth + 1) { return problem }
                }
            }
        }
        return nil
    }

    /// Values the parser keeps as bytes (VR UN, and private OB/OW/UN) are not decoded, so what they
    /// hold is searched for the tags of identifying elements (an item of a private sequence read as
    /// UN holds its elements as bytes); trailing padding must be zeros.
    static func opaqueProblem(_ dataSet: DataSet) -> String? {
        for element in dataSet.elements {
            switch element.value {
            case .sequence(let items):
                for item in items { if let problem = opaqueProblem(item) { return problem } }
            case .bytes(let bytes):
                if element.tag == DicomTag(0xFFFC, 0xFFFC) {
                    if bytes.contains(where: { $0 != 0 }) { return "trailing padding \(element.tag) holds data" }
                    continue
                }
                guard element.vr == .UN || (element.tag.isPrivate && [.OB, .OW, .UN, .UT, .LT].contains(element.vr)) else { continue }
                if let tag = identifierTagPattern(in: bytes) {
                    return "the undecoded value of \(element.tag) at offset \(element.offset) holds an element tagged \(tag) "
                        + "(an identifier)"
                }
            case .bulk(_, let length):
                if element.tag == DicomTag(0xFFFC, 0xFFFC) || element.vr == .UN || (element.tag.isPrivate && element.tag.group != 0x7FE0) {
                    return "\(element.tag) at offset \(element.offset) holds \(length) bytes that are not decoded or searched"
                }
            case .encapsulated:
                continue
            }
        }
        return nil
    }

    /// Direct identifiers searched for in values the parser keeps undecoded.
    static let opaqueIdentifierTags: [DicomTag] = [
        "PatientName", "PatientBirthDate", "PatientBirthTime", "PatientAddress", "PatientTelephoneNumbers",
        "PatientTelecomInformation", "OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames",
        "PatientBirthName", "PatientMotherBirthName", "MedicalRecordLocator", "MilitaryRank",
        "BranchOfService", "InsurancePlanIdentification", "ResponsiblePerson", "RegionOfResidence",
        "PersonAddress", "PersonTelephoneNumbers", "PersonTelecomInformation", "ReferringPhysicianAddress",
        "ReferringPhysicianTelephoneNumbers", "PatientReligiousPreference", "PersonName", "IssuerOfPatientID",
        "CountryOfResidence", "PatientInsurancePlanCodeSequence", "AccessionNumber",
    ].compactMap { DataDictionary.standard.tag(forKeyword: $0) }

    /// Identifier tags as little- and big-endian bytes, once.
    static let identifierPatterns: [(DicomTag, [UInt8], [UInt8])] = opaqueIdentifierTags.map { tag in
        (tag, [UInt8(tag.group & 0xFF), UInt8(tag.group >> 8), UInt8(tag.element & 0xFF), UInt8(tag.element >> 8)],
         [UInt8(tag.group >> 8), UInt8(tag.group & 0xFF), UInt8(tag.element >> 8), UInt8(tag.element & 0xFF)])
    }

    static func identifierTagPattern(in bytes: [UInt8]) -> DicomTag? {
        guard bytes.count >= 4 else { return nil }
        for i in 0...(bytes.count - 4) {
            // Every identifier tag is in groups 0008-0040, so its first byte (little endian) or
            // second (big endian) is small: skip the rest fast.
            guard bytes[i] <= 0x40 || bytes[i + 1] <= 0x40 else { continue }
            for (tag, little, big) in identifierPatterns
            where (bytes[i] == little[0] && bytes[i + 1] == little[1] && bytes[i + 2] == little[2] && bytes[i + 3] == little[3])
                || (bytes[i] == big[0] && bytes[i + 1] == big[1] && bytes[i + 2] == big[2] && bytes[i + 3] == big[3]) {
                return tag
            }
        }
        return nil
    }

    /// Type 1 attributes every composite instance has, and an image's whole pixel data: a file cut
    /// at an element boundary parses, but misses these.
    static func incompleteness(_ file: DicomFile, bulk: BulkPrefixReader? = nil) -> String? {
        let ds = file.dataSet
        for keyword in ["SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"]
        where (ds.string(keyword) ?? "").isEmpty {
            return "an incomplete instance: no \(keyword) (cut short?)"
        }
        let pixelTags = [DicomTag.pixelData, DicomTag(0x7FE0, 0x0008), DicomTag(0x7FE0, 0x0009)]
        let pixels = pixelTags.lazy.compactMap({ ds[$0] }).first
        guard let rows = ds.integer("Rows"), let columns = ds.integer("Columns") else {
            // Without its size nothing can tell the frames from what follows them.
            return pixels.map { _ in "pixel data without Rows and Columns cannot be judged" }
        }
        guard let pixels else {
            return "an incomplete image: Rows and Columns but no pixel data (cut short?)"
        }
        let length: Int
        switch pixels.value {
        case .bulk(_, let count): length = count
        case .bytes(let bytes): length = bytes.count
        case .encapsulated(let encapsulated):
            if encapsulated.fragments.isEmpty { return "an incomplete image: encapsulated pixel data with no fragment" }
            // A Basic Offset Table holds one offset per frame, the first 0, ascending, inside the
            // fragments (PS3.5 A.4): anything else is bytes no reader uses.
            let table = encapsulated.basicOffsetTable
            guard !table.isEmpty else { return nil }
            let frames = max(1, ds.integer("NumberOfFrames") ?? 1)
            let span = encapsulated.fragments.reduce(0) { $0 + 8 + $1.length }
            let ascending = zip(table, table.dropFirst()).allSatisfy { $0 < $1 }
            if table.count != frames || table.first != 0 || !ascending || Int(table.last ?? 0) >= span {
                return "a Basic Offset Table that is not one ascending offset per frame into the fragments"
            }
            return nil
        case .sequence: return "pixel data \(pixels.tag) is a sequence"
        }
        // YBR_FULL_422 and YBR_PARTIAL_422 store two chroma samples per pair of pixels (PS3.3 C.7.6.3.1.2).
        let subsampled = ["YBR_FULL_422", "YBR_PARTIAL_422"].contains(ds.string("PhotometricInterpretation") ?? "")
        let samples = subsampled ? 2 : max(1, ds.integer("SamplesPerPixel") ?? 1)
        let bits = ds.integer("BitsAllocated") ?? 16
        let frames = max(1, ds.integer("NumberOfFrames") ?? 1)
        // Every product checked: the factors come from the file (NumberOfFrames near Int64.max).
        var pixelCount = rows
        var overflow = false
        for factor in [columns, samples, frames] {
            let (product, over) = pixelCount.multipliedReportingOverflow(by: factor)
            pixelCount = product
            overflow = overflow || over
        }
        guard !overflow, rows >= 0, columns >= 0 else { return "Rows x Columns x frames overflows" }
        // Float and Double Float Pixel Data hold 4- and 8-byte samples whatever Bits Allocated says.
        let sampleBytes = pixels.tag == .pixelData ? max(1, (min(bits, 64) + 7) / 8) : pixels.tag.element == 0x0008 ? 4 : 8
        let (bytes, bytesOverflow) = pixelCount.multipliedReportingOverflow(by: sampleBytes)
        guard !bytesOverflow else { return "Rows x Columns x frames x bytes per sample overflows" }
        let expected = bits == 1 && pixels.tag == .pixelData ? pixelCount / 8 + (pixelCount % 8 == 0 ? 0 : 1) : bytes
        if length < expected {
            return "an incomplete image: \(length) bytes of pixel data where Rows x Columns x samples x frames needs \(expected)"
        }
        // Bytes after the last frame are shown by nothing: padding, or a place to hide text. The one
        // byte that pads an odd length to even passes whatever it holds (writers differ); zeros
        // pass; anything else, or too much to read, is refused.
        let extra = length - expected
        guard extra > 0, !(extra == 1 && expected % 2 == 1) else { return nil }
        let trailing: [UInt8]?
        switch pixels.value {
        case .bytes(let bytes): trailing = Array(bytes[expected...])
        case .bulk(let offset, _):
            trailing = extra <= trailingPixelBytesChecked ? bulk?(offset + expected, extra) : nil
        default: trailing = nil
        }
        guard let trailing, trailing.allSatisfy({ $0 == 0 }) else {
            return "\(extra) bytes of pixel data after the last frame that are not zero padding (Rows x Columns x samples x "
                + "frames needs \(expected)): nothing shows them, so nothing can judge them"
        }
        return nil
    }

    /// The shapes the parser accepts at the start of a file of `size` bytes.
    static func leadingShape(_ prefix: [UInt8], size: Int) -> String? {
        let dicm = Array("DICM".utf8)
        if prefix.count >= 132, Array(prefix[128..<132]) == dicm { return "DICM at offset 128" }
        if prefix.count >= 4, Array(prefix[0..<4]) == dicm { return "DICM at offset 0" }
        if prefix.count >= 8 {
            // The parser's guess for a bare data set: a first group of 0002-0020, read little or big
            // endian. Random bytes fit that one time in two thousand, so the first element must also
            // look like one: an explicit VR, or an implicit length that is undefined or fits in the
            // file (a first element longer than the prefix read is still an element).
            let little = UInt16(prefix[0]) | UInt16(prefix[1]) << 8
            let big = UInt16(prefix[0]) << 8 | UInt16(prefix[1])
            let explicit = VR(bytes: prefix[4], prefix[5]) != nil
            let implicitLength = UInt32(prefix[4]) | UInt32(prefix[5]) << 8 | UInt32(prefix[6]) << 16 | UInt32(prefix[7]) << 24
            let plausibleImplicit = Int(implicitLength) <= max(size - 8, 0) || implicitLength == 0xFFFF_FFFF
            if ((0x0002...0x0020).contains(little) && (explicit || plausibleImplicit))
                || ((0x0002...0x0020).contains(big) && explicit) {
                return "starts like a DICOM data set without a preamble"
            }
        }
        return nil
    }

    /// DICOM seen further in: behind leading junk, or stored inside another format.
    static func embeddedShape(_ prefix: [UInt8]) -> String? {
        if let at = find(Array("DICM".utf8), in: prefix) { return "DICM at offset \(at)" }
        if let at = patientNameElement(in: prefix) { return "a Patient Name element at offset \(at)" }
        return nil
    }

    /// (0010,0010) in explicit VR of either byte order, or in implicit VR little endian with a short printable value.
    static func patientNameElement(in bytes: [UInt8]) -> Int? {
        guard bytes.count >= 8 else { return nil }
        for i in 0...(bytes.count - 8) {
            if bytes[i] == 0x10, bytes[i + 1] == 0, bytes[i + 2] == 0x10, bytes[i + 3] == 0 {
                if bytes[i + 4] == 0x50, bytes[i + 5] == 0x4E { return i }
                let length = Int(bytes[i + 4]) | Int(bytes[i + 5]) << 8 | Int(bytes[i + 6]) << 16 | Int(bytes[i + 7]) << 24
                if length >= 2, length <= 64, i + 8 + length <= bytes.count,
                   bytes[(i + 8)..<(i + 8 + length)].allSatisfy({ (0x20...0x7E).contains($0) }) { return i }
            }
            if bytes[i] == 0, bytes[i + 1] == 0x10, bytes[i + 2] == 0, bytes[i + 3] == 0x10, bytes[i + 4] == 0x50, bytes[i + 5] == 0x4E {
                return i
            }
        }
        return nil
    }

    static func archiveKind(_ prefix: [UInt8]) -> String? {
        func starts(_ magic: [UInt8]) -> Bool { prefix.count >= magic.count && Array(prefix[0..<magic.count]) == magic }
        if starts([0x1F, 0x8B]) { return "gzip" }
        if starts([0x50, 0x4B, 0x03, 0x04]) || starts([0x50, 0x4B, 0x05, 0x06]) { return "zip" }
        if starts([0x28, 0xB5, 0x2F, 0xFD]) { return "zstd" }
        if starts([0x42, 0x5A, 0x68]) { return "bzip2" }
        if starts([0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00]) { return "xz" }
        if starts([0x37, 0x7A, 0xBC, 0xAF, 0x27, 0x1C]) { return "7z" }
        if starts([0x04, 0x22, 0x4D, 0x18]) { return "lz4" }
        if prefix.count >= 262, Array(prefix[257..<262]) == Array("ustar".utf8) { return "tar" }
        return nil
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for i in 0...(haystack.count - needle.count) where haystack[i] == needle[0] {
            if Array(haystack[i..<(i + needle.count)]) == needle { return i }
        }
        return nil
    }

    /// `length` bytes of the file at `offset`, or nil when they cannot all be read.
    static func readRange(_ path: String, offset: Int, length: Int) -> [UInt8]? {
        let bytes = read(path, offset: offset, upTo: length)
        return bytes.count == length ? bytes : nil
    }

    static func fileSize(_ path: String) -> Int {
        var info = stat()
        guard stat(path, &info) == 0 else { return 0 }
        return Int(info.st_size)
    }

    static func readPrefix(_ path: String) -> [UInt8] { read(path, offset: 0, upTo: prefixLength) }

    /// Up to `length` bytes of the file from `offset` (fewer at its end or on an error).
    static func read(_ path: String, offset: Int, upTo length: Int) -> [UInt8] {
        guard offset >= 0, length >= 0 else { return [] }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: length)
        var filled = 0
        while filled < length {
            let n = bytes.withUnsafeMutableBytes { buffer -> Int in
                guard let base = buffer.baseAddress else { return -1 }
                return pread(fd, base + filled, length - filled, off_t(offset + filled))
            }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            filled += n
        }
        return Array(bytes[0..<filled])
    }
}
