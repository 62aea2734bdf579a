/// A parsed Part 10 file (or a bare data set): the File Meta group, the data set, and the
/// transfer syntax that encodes the data set.
public struct DicomFile: Sendable {
    public var meta: DataSet?
    public var dataSet: DataSet
    public var transferSyntax: TransferSyntax
    /// True when element offsets are file offsets; false for a deflated data set, parsed after inflating.
    public var offsetsAreFileOffsets: Bool
    /// False when a deflated data set's stream stopped before its end, or bytes follow it (read
    /// leniently, as pydicom does; the de-identification gate refuses such a file).
    public var deflateComplete = true
    /// Bytes the parse skipped without reading them (an item cut short by an item delimiter).
    public var bytesSkipped = 0
}

/// Limits that keep hostile input bounded in time and memory.
public struct ParseLimits: Sendable {
    public var maxDepth = 32
    public var maxElements = 2_000_000
    /// Values longer than this are recorded as bulk (offset, length), not loaded.
    public var maxInlineValue = 1 << 20
    /// Inflated size bound for deflated data sets.
    public var maxInflated = 512 << 20

    public init() {}
}

/// A DICOM Part 10 reader: preamble + DICM + File Meta, or no preamble, or no meta group;
/// implicit/explicit VR, little/big endian, deflated; defined and undefined lengths; nested
/// sequences to `maxDepth`; encapsulated pixel data with its Basic Offset Table and fragments.
public struct DicomParser {
    public var limits = ParseLimits()

    public init(limits: ParseLimits = ParseLimits()) { self.limits = limits }

    public func parse(path: String) throws -> DicomFile {
        try parse(DicomInput(path: path))
    }

    public func parse(bytes: [UInt8]) throws -> DicomFile {
        try parse(DicomInput(bytes: bytes))
    }

    /// Parses `size` bytes that `source` reads on demand (a stored blob's original bytes);
    /// `cheapEnd(offset)` says where a read from `offset` stops costing nothing extra (a frame end).
    public func parse(size: Int, name: String, source: @escaping DicomByteSource,
                      cheapEnd: ((Int) -> Int)? = nil) throws -> DicomFile {
        try parse(DicomInput(size: size, name: name, source: source, cheapEnd: cheapEnd))
    }

    func parse(_ input: DicomInput) throws -> DicomFile {
        var state = State(limits: limits)
        var position = 0
        var hasPreamble = false
        if input.size >= 132, try input.bytes(128, 4) == Array("DICM".utf8) {
            position = 132
            hasPreamble = true
        } else if input.size >= 4, try input.bytes(0, 4) == Array("DICM".utf8) {
            position = 4
            hasPreamble = true
        }
        var meta: DataSet?
        var syntax: TransferSyntax
        if try startsMetaGroup(input, at: position) {
            let (metaSet, end) = try state.parseDataSet(input, from: position, end: nil, syntax: .explicitLittle,
                                                        characterSet: .default, depth: 0, stopAtGroupChange: 0x0002)
            meta = metaSet
            position = end
            let uid = metaSet.strings(.transferSyntaxUID)?.first ?? TransferSyntax.implicitLittle.uid
            syntax = try correctVRStyle(TransferSyntax(uid: uid), input, at: position)
        } else if hasPreamble {
            throw DicomError.notDicom("DICM prefix without a File Meta group")
        } else {
            syntax = try guessSyntax(input, at: position)
        }
        if syntax.deflated {
            let compressed = try input.bytes(position, input.size - position)
            // Bounded by what was sent, not only by the cap: DEFLATE tops out near 1,032:1, real data
            // sets near 10:1, so past the first MiB a data set may grow 200 times its deflated size.
            let bound = min(limits.maxInflated, max(1 << 20, compressed.count.multipliedReportingOverflow(by: 200).partialValue))
            let (inflated, complete) = try Inflate.raw(compressed, limit: bound)
            let (dataSet, _) = try state.parseDataSet(DicomInput(bytes: inflated), from: 0, end: nil, syntax: syntax,
                                                      characterSet: .default, depth: 0, stopAtGroupChange: nil)
            return DicomFile(meta: meta, dataSet: dataSet, transferSyntax: syntax, offsetsAreFileOffsets: false,
                             deflateComplete: complete, bytesSkipped: state.bytesSkipped)
        }
        let (dataSet, _) = try state.parseDataSet(input, from: position, end: nil, syntax: syntax,
                                                  characterSet: .default, depth: 0, stopAtGroupChange: nil)
        return DicomFile(meta: meta, dataSet: dataSet, transferSyntax: syntax, offsetsAreFileOffsets: true,
                         bytesSkipped: state.bytesSkipped)
    }

    private func startsMetaGroup(_ input: DicomInput, at position: Int) throws -> Bool {
        guard input.size >= position + 8 else { return false }
        return try input.u16(position, bigEndian: false) == 0x0002
            && VR(bytes: try input.u8(position + 4), try input.u8(position + 5)) != nil
    }

    /// Some writers declare one VR style and write the other; like pydicom, believe the bytes:
    /// the first element of the data set shows whether a VR follows its tag.
    private func correctVRStyle(_ syntax: TransferSyntax, _ input: DicomInput, at position: Int) throws -> TransferSyntax {
        guard !syntax.deflated, input.size >= position + 8 else { return syntax }
        let looksExplicit = VR(bytes: try input.u8(position + 4), try input.u8(position + 5)) != nil
        guard looksExplicit != syntax.explicitVR else { return syntax }
        var corrected = syntax
        corrected.explicitVR = looksExplicit
        return corrected
    }

    /// No meta group: infer byte order from the first group number and VR style from its bytes.
    private func guessSyntax(_ input: DicomInput, at position: Int) throws -> TransferSyntax {
        guard input.size >= position + 8 else { throw DicomError.notDicom("too short (\(input.size) bytes)") }
        let little = try input.u16(position, bigEndian: false)
        let big = try input.u16(position, bigEndian: true)
        let explicit = VR(bytes: try input.u8(position + 4), try input.u8(position + 5)) != nil
        let plausible: (UInt16) -> Bool = { $0 >= 0x0002 && $0 <= 0x0020 }
        if plausible(little) { return explicit ? .explicitLittle : .implicitLittle }
        if plausible(big) && explicit { return .explicitBig }
        throw DicomError.notDicom("no DICM prefix and no recognisable first element")
    }

    struct State {
        let limits: ParseLimits
        var elementCount = 0
        /// Bytes inside items of defined length that were never read.
        var bytesSkipped = 0

        init(limits: ParseLimits) { self.limits = limits }

        /// Parses elements from `start` until `end` (nil: end of input), an item delimiter, or
        /// (for the meta group) the first element of another group. Returns the data set and where it stopped.
        mutating func parseDataSet(_ input: DicomInput, from start: Int, end: Int?, syntax: TransferSyntax,
                                   characterSet inherited: CharacterSetDecoder, depth: Int,
                                   stopAtGroupChange: UInt16?) throws -> (DataSet, Int) {
            guard depth <= limits.maxDepth else { throw DicomError.tooDeep(offset: start, limit: limits.maxDepth) }
            var dataSet = DataSet(elements: [], bigEndian: syntax.bigEndian, characterSet: inherited)
            var position = start
            let limit = end ?? input.size
            while position < limit {
                if end == nil && depth == 0 && input.size - position < 8,
                   try input.bytes(position, input.size - position).allSatisfy({ $0 == 0 }) {
                    break  // a few zero bytes of padding after the last element, as some writers leave
                }
                let bigEndian = syntax.bigEndian
                let group = try input.u16(position, bigEndian: bigEndian)
                if let wanted = stopAtGroupChange, group != wanted { break }
                let tag = DicomTag(group, try input.u16(position + 2, bigEndian: bigEndian))
                if tag == .itemDelimitation {
                    guard depth > 0 else { throw DicomError.unexpectedTag(tag: tag, offset: position, expected: "a data element") }
                    return (dataSet, position + 8)
                }
                if tag.group == 0xFFFE {
                    throw DicomError.unexpectedTag(tag: tag, offset: position, expected: "a data element")
                }
                let element = try parseElement(input, at: position, tag: tag, limit: limit, syntax: syntax,
                                               dataSet: dataSet, depth: depth)
                position = element.end
                if tag == .specificCharacterSet, case .bytes(let bytes) = element.element.value {
                    dataSet.characterSet = CharacterSetDecoder(specificCharacterSet: bytes)
                }
                dataSet.elements.append(element.element)
                elementCount += 1
                if elementCount > limits.maxElements { throw DicomError.tooManyElements(limit: limits.maxElements) }
            }
            if depth > 0 && end == nil { throw DicomError.truncated(offset: position, needed: 8, size: input.size) }
            return (dataSet, position)
        }

        private mutating func parseElement(_ input: DicomInput, at offset: Int, tag: DicomTag, limit: Int,
                                           syntax: TransferSyntax, dataSet: DataSet, depth: Int) throws -> (element: DataElement, end: Int) {
            let bigEndian = syntax.bigEndian
            var vr: VR
            var length: UInt32
            var valueOffset: Int
            if syntax.explicitVR {
                let b0 = try input.u8(offset + 4), b1 = try input.u8(offset + 5)
                guard let explicitVR = VR(bytes: b0, b1) else {
                    throw DicomError.invalidVR(tag: tag, offset: offset, bytes: [b0, b1])
                }
                vr = explicitVR
                if vr.hasLongLength {
                    length = try input.u32(offset + 8, bigEndian: bigEndian)
                    valueOffset = offset + 12
                } else {
                    length = UInt32(try input.u16(offset + 6, bigEndian: bigEndian))
                    valueOffset = offset + 8
                }
                if vr == .UN && length != 0xFFFF_FFFF {
                    // A writer that did not know the VR said UN; the dictionary may know (PS3.5 6.2.2 note).
                    let known = Self.implicitVR(tag, dataSet: dataSet)
                    if known != .UN {
                        vr = known
                        if known == .SQ {
                            let valueEnd = valueOffset + Int(length)
                            guard valueEnd <= limit, valueEnd <= input.size else {
                                throw DicomError.valuePastEnd(tag: tag, offset: offset, length: UInt64(length), end: min(limit, input.size))
                            }
                            let (items, _) = try parseItems(input, from: valueOffset, end: valueEnd, syntax: .implicitLittle,
                                                            characterSet: dataSet.characterSet, depth: depth)
                            return (DataElement(tag: tag, vr: .SQ, offset: offset, valueOffset: valueOffset, length: length,
                                                value: .sequence(items)), valueEnd)
                        }
                    }
                }
            } else {
                length = try input.u32(offset + 4, bigEndian: bigEndian)
                valueOffset = offset + 8
                vr = Self.implicitVR(tag, dataSet: dataSet)
            }
            if length == 0xFFFF_FFFF {
                if tag == .pixelData {
                    let (pixels, end) = try parseFragments(input, from: valueOffset, bigEndian: bigEndian)
                    return (DataElement(tag: tag, vr: vr == .OW ? .OB : vr, offset: offset, valueOffset: valueOffset,
                                        length: nil, value: .encapsulated(pixels)), end)
                }
                guard vr == .SQ || vr == .UN else { throw DicomError.undefinedLength(tag: tag, vr: vr, offset: offset) }
                // UN with undefined length is a sequence in implicit VR little endian (PS3.5 6.2.2).
                let itemSyntax = vr == .UN ? TransferSyntax.implicitLittle : syntax
                let (items, end) = try parseItems(input, from: valueOffset, end: nil, syntax: itemSyntax,
                                                  characterSet: dataSet.characterSet, depth: depth)
                return (DataElement(tag: tag, vr: .SQ, offset: offset, valueOffset: valueOffset, length: nil,
                                    value: .sequence(items)), end)
            }
            let valueEnd = valueOffset + Int(length)
            guard valueEnd <= limit, valueEnd <= input.size else {
                throw DicomError.valuePastEnd(tag: tag, offset: offset, length: UInt64(length), end: min(limit, input.size))
            }
            if vr == .SQ {
                let (items, _) = try parseItems(input, from: valueOffset, end: valueEnd, syntax: syntax,
                                                characterSet: dataSet.characterSet, depth: depth)
                return (DataElement(tag: tag, vr: vr, offset: offset, valueOffset: valueOffset, length: length,
                                    value: .sequence(items)), valueEnd)
            }
            let value: DataElement.Value
            if tag == .pixelData || Int(length) > limits.maxInlineValue || (vr.isBulk && length > 1024) {
                value = .bulk(offset: valueOffset, length: Int(length))
            } else {
                value = .bytes(try input.bytes(valueOffset, Int(length)))
            }
            return (DataElement(tag: tag, vr: vr, offset: offset, valueOffset: valueOffset, length: length, value: value), valueEnd)
        }

        /// The VR an implicit-VR reader must assume, from the dictionary (PS3.5 Annex A.1).
        static func implicitVR(_ tag: DicomTag, dataSet: DataSet) -> VR {
            if tag.isGroupLength { return .UL }
            if tag.isPrivateCreator { return .LO }
            guard let code = DataDictionary.standard.entry(for: tag)?.vrCode else { return .UN }
            switch code {
            case "xs":
                return dataSet.integer("PixelRepresentation") == 1 ? .SS : .US
            case "ox", "px", "lt": return .OW
            case "up": return .UL
            default: return VR(rawValue: code) ?? .UN
            }
        }

        private mutating func parseItems(_ input: DicomInput, from start: Int, end: Int?, syntax: TransferSyntax,
                                         characterSet: CharacterSetDecoder, depth: Int) throws -> ([DataSet], Int) {
            var items: [DataSet] = []
            var position = start
            let bigEndian = syntax.bigEndian
            while end == nil || position < end! {
                let tag = DicomTag(try input.u16(position, bigEndian: bigEndian), try input.u16(position + 2, bigEndian: bigEndian))
                let length = try input.u32(position + 4, bigEndian: bigEndian)
                if tag == .sequenceDelimitation {
                    guard end == nil else { throw DicomError.unexpectedTag(tag: tag, offset: position, expected: "an item") }
                    return (items, position + 8)
                }
                guard tag == .item else { throw DicomError.unexpectedTag(tag: tag, offset: position, expected: "an item") }
                let itemStart = position + 8
                if length == 0xFFFF_FFFF {
                    let (item, next) = try parseDataSet(input, from: itemStart, end: nil, syntax: syntax,
                                                        characterSet: characterSet, depth: depth + 1, stopAtGroupChange: nil)
                    items.append(item)
                    position = next
                } else {
                    let itemEnd = itemStart + Int(length)
                    if let end, itemEnd > end {
                        throw DicomError.valuePastEnd(tag: tag, offset: position, length: UInt64(length), end: end)
                    }
                    guard itemEnd <= input.size else {
                        throw DicomError.valuePastEnd(tag: tag, offset: position, length: UInt64(length), end: input.size)
                    }
                    let (item, stopped) = try parseDataSet(input, from: itemStart, end: itemEnd, syntax: syntax,
                                                           characterSet: characterSet, depth: depth + 1, stopAtGroupChange: nil)
                    // An item delimiter inside an item of defined length ends the parse early: the
                    // rest of the item is skipped unread (as pydicom does), and the gate must know.
                    if stopped < itemEnd { bytesSkipped += itemEnd - stopped }
                    items.append(item)
                    position = itemEnd
                }
                elementCount += 1
                if elementCount > limits.maxElements { throw DicomError.tooManyElements(limit: limits.maxElements) }
            }
            return (items, position)
        }

        /// Encapsulated pixel data: items until the sequence delimiter; the first is the Basic Offset Table.
        private mutating func parseFragments(_ input: DicomInput, from start: Int, bigEndian: Bool) throws -> (EncapsulatedPixelData, Int) {
            var position = start
            var table: [UInt32]?
            var fragments: [EncapsulatedPixelData.Fragment] = []
            while true {
                let tag = DicomTag(try input.u16(position, bigEndian: bigEndian), try input.u16(position + 2, bigEndian: bigEndian))
                let length = try input.u32(position + 4, bigEndian: bigEndian)
                if tag == .sequenceDelimitation {
                    return (EncapsulatedPixelData(basicOffsetTable: table ?? [], fragments: fragments),
                            position + 8)
                }
                guard tag == .item, length != 0xFFFF_FFFF else {
                    throw DicomError.unexpectedTag(tag: tag, offset: position, expected: "a pixel data item")
                }
                let valueStart = position + 8
                guard valueStart + Int(length) <= input.size else {
                    throw DicomError.valuePastEnd(tag: tag, offset: position, length: UInt64(length), end: input.size)
                }
                if table == nil {
                    var offsets: [UInt32] = []
                    if length % 4 == 0 && length <= 4 * 1_000_000 {
                        for i in stride(from: 0, to: Int(length), by: 4) {
                            offsets.append(try input.u32(valueStart + i, bigEndian: bigEndian))
                        }
                    }
                    table = offsets
                } else {
                    fragments.append(.init(itemOffset: position, valueOffset: valueStart, length: Int(length)))
                    elementCount += 1
                    if elementCount > limits.maxElements { throw DicomError.tooManyElements(limit: limits.maxElements) }
                }
                position = valueStart + Int(length)
            }
        }
    }
}
