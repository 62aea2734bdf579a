/// One data element as it was read.
public struct DataElement: Sendable {
    public enum Value: Sendable {
        /// The value bytes (strings, numbers, small binary values).
        case bytes([UInt8])
        /// A large or binary value left in place: its position in the parsed stream.
        case bulk(offset: Int, length: Int)
        case sequence([DataSet])
        /// Encapsulated (compressed) pixel data: the Basic Offset Table and the fragments.
        case encapsulated(EncapsulatedPixelData)
    }

    public var tag: DicomTag
    public var vr: VR
    /// Where the element's header starts, and where its value starts, in the parsed stream.
    public var offset: Int
    public var valueOffset: Int
    /// nil for undefined length.
    public var length: UInt32?
    public var value: Value
}

public struct EncapsulatedPixelData: Sendable {
    public struct Fragment: Sendable {
        /// Offset of the fragment's item tag, and of its bytes, in the parsed stream.
        public var itemOffset: Int
        public var valueOffset: Int
        public var length: Int
    }

    public var basicOffsetTable: [UInt32]
    public var fragments: [Fragment]
}

/// The elements of a data set or sequence item, in stream order, with how its bytes are encoded.
public struct DataSet: Sendable {
    public var elements: [DataElement]
    public var bigEndian: Bool
    /// Specific Character Set in force (inherited by items that do not declare their own).
    public var characterSet: CharacterSetDecoder

    public subscript(tag: DicomTag) -> DataElement? {
        // Elements are few and ordered; a linear scan beats building an index per data set.
        for element in elements where element.tag == tag { return element }
        return nil
    }

    public subscript(keyword: String) -> DataElement? {
        DataDictionary.standard.tag(forKeyword: keyword).flatMap { self[$0] }
    }

    /// The element's values as strings (string VRs), decoded with the character set, trailing padding removed.
    public func strings(_ tag: DicomTag) -> [String]? {
        guard let element = self[tag] else { return nil }
        return ValueDecoder(dataSet: self).strings(element)
    }

    public func string(_ keyword: String) -> String? {
        guard let element = self[keyword] else { return nil }
        return ValueDecoder(dataSet: self).strings(element)?.first
    }

    /// Integer value of IS or binary integer VRs.
    public func integer(_ keyword: String) -> Int? {
        guard let element = self[keyword] else { return nil }
        return ValueDecoder(dataSet: self).numbers(element)?.first.flatMap { number -> Int? in
            switch number {
            case .int(let value): return Int(exactly: value)
            case .uint(let value): return Int(exactly: value)
            case .double(let value): return value.isFinite ? Int(exactly: value.rounded()) : nil
            }
        }
    }
}
