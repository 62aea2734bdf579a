/// Native (uncompressed) pixel data as the pixel stage sees it: little-endian samples of one or two
/// bytes, `samplesPerPixel` interleaved per pixel (1 for planar or monochrome data), `columns` per row.
public struct PixelGeometry: Sendable, Hashable {
    public var bytesPerSample: Int
    public var samplesPerPixel: Int
    public var columns: Int
    /// Two's-complement samples (PixelRepresentation 1): predicted in signed order.
    public var isSigned: Bool

    public static let columnRange = 1...65535

    /// Nil unless every field is one the frame header can carry.
    public init?(bytesPerSample: Int, samplesPerPixel: Int, columns: Int, isSigned: Bool) {
        guard bytesPerSample == 1 || bytesPerSample == 2, (1...4).contains(samplesPerPixel),
              Self.columnRange.contains(columns) else { return nil }
        self.bytesPerSample = bytesPerSample
        self.samplesPerPixel = samplesPerPixel
        self.columns = columns
        self.isSigned = isSigned
    }

    /// Samples in one row of the image.
    public var rowSamples: Int { columns * samplesPerPixel }
    public var rowBytes: Int { rowSamples * bytesPerSample }
}

/// The reversible transforms of the pixel stage. Each maps a frame to a same-sized frame that
/// compresses better; ids are part of the blob format (README "Blob files").
public enum PixelTransform: UInt8, Sendable, CaseIterable {
    /// Byte planes: all low bytes, then all high bytes (16-bit only).
    case shuffle = 1
    /// Residual against the previous sample of the same component in the row (the one above for
    /// the first pixel of a row), zigzag-mapped to unsigned, then byte planes.
    case delta = 2
    /// Residual against LOCO-I's median edge detector (JPEG-LS's predictor) over the left, upper
    /// and upper-left samples of the same component, zigzag-mapped, then byte planes.
    case med = 3
}

/// The 16-byte header that starts every pixel frame in a blob: magic "CPX1", transform, inner
/// codec, geometry. All little-endian; reserved bytes are zero.
public struct PixelFrameHeader: Sendable, Equatable {
    public var transform: PixelTransform
    public var codec: BlobCodec
    public var geometry: PixelGeometry

    public static let magic: UInt32 = 0x3158_5043  // "CPX1"
    public static let size = 16

    public init(transform: PixelTransform, codec: BlobCodec, geometry: PixelGeometry) {
        self.transform = transform
        self.codec = codec
        self.geometry = geometry
    }

    static func codecID(_ codec: BlobCodec) -> UInt8 {
        switch codec {
        case .zstd: return 1
        case .lz4: return 2
        case .raw, .pixel: return 0
        }
    }

    public func encoded() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Self.size)
        withUnsafeBytes(of: Self.magic.littleEndian) { for i in 0..<4 { out[i] = $0[i] } }
        out[4] = transform.rawValue
        out[5] = Self.codecID(codec)
        out[6] = UInt8(geometry.bytesPerSample)
        out[7] = UInt8(geometry.samplesPerPixel)
        withUnsafeBytes(of: UInt32(geometry.columns).littleEndian) { for i in 0..<4 { out[8 + i] = $0[i] } }
        out[12] = geometry.isSigned ? 1 : 0
        return out
    }

    /// Parses a header; nil when any field is out of range (the frame is damaged).
    public static func parse(_ bytes: UnsafeRawBufferPointer) -> PixelFrameHeader? {
        guard bytes.count >= size, readU32(bytes, 0) == magic,
              let transform = PixelTransform(rawValue: bytes[4]),
              bytes[12] & 0xFE == 0, bytes[13] == 0, bytes[14] == 0, bytes[15] == 0
        else { return nil }
        let codec: BlobCodec
        switch bytes[5] {
        case 1: codec = .zstd
        case 2: codec = .lz4
        default: return nil
        }
        guard let geometry = PixelGeometry(bytesPerSample: Int(bytes[6]), samplesPerPixel: Int(bytes[7]),
                                           columns: Int(readU32(bytes, 8)), isSigned: bytes[12] == 1),
              transform != .shuffle || geometry.bytesPerSample == 2
        else { return nil }
        return PixelFrameHeader(transform: transform, codec: codec, geometry: geometry)
    }
}

@inline(__always)
func readU32(_ bytes: UnsafeRawBufferPointer, _ at: Int) -> UInt32 {
    UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
}

/// Forward and inverse pixel transforms over one frame that starts at the first sample of a row.
/// A frame may end inside a row, and a trailing byte that is not a whole sample is carried as is.
public enum PixelCoder {
    /// Writes the transform of `source` into `destination` (the same size).
    public static func forward(_ transform: PixelTransform, _ geometry: PixelGeometry,
                               _ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) {
        precondition(source.count == destination.count)
        if geometry.bytesPerSample == 2 {
            forward(Word16.self, transform, geometry, source, destination)
        } else {
            forward(Word8.self, transform, geometry, source, destination)
        }
    }

    /// Restores what `forward` transformed: `source` holds the transformed frame, `destination`
    /// (the same size) receives the original bytes.
    public static func inverse(_ transform: PixelTransform, _ geometry: PixelGeometry,
                               _ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) {
        precondition(source.count == destination.count)
        if geometry.bytesPerSample == 2 {
            inverse(Word16.self, transform, geometry, source, destination)
        } else {
            inverse(Word8.self, transform, geometry, source, destination)
        }
    }

    @inline(__always)
    static func median(_ a: UInt32, _ b: UInt32, _ c: UInt32) -> UInt32 {
        let high = max(a, b), low = min(a, b)
        if c >= high { return low }
        if c <= low { return high }
        return a &+ b &- c
    }

    private static func forward<W: SampleWord>(_: W.Type, _ transform: PixelTransform, _ geometry: PixelGeometry,
                                              _ source: UnsafeRawBufferPointer, _ destination: UnsafeMutableRawBufferPointer) {
        let count = source.count / W.bytes
        let tail = source.count - count * W.bytes
        guard let input = source.baseAddress, let output = destination.baseAddress else { return }
        if tail > 0 { output.storeBytes(of: source[source.count - 1], toByteOffset: destination.count - 1, as: UInt8.self) }
        let bias: UInt32 = geometry.isSigned ? W.signBit : 0
        @inline(__always) func value(_ i: Int) -> UInt32 { W.load(input, i) ^ bias }
        if transform == .shuffle {
            for i in 0..<count { W.storePlanes(W.load(input, i), output, i, count) }
            return
        }
        let width = geometry.rowSamples, stride = geometry.samplesPerPixel
        var rowStart = 0
        while rowStart < count {
            let rowEnd = min(count, rowStart + width)
            for i in rowStart..<rowEnd {
                let predicted: UInt32
                if i - rowStart >= stride {
                    if transform == .med && rowStart > 0 {
                        predicted = median(value(i - stride), value(i - width), value(i - width - stride))
                    } else {
                        predicted = value(i - stride)
                    }
                } else {
                    predicted = rowStart > 0 ? value(i - width) : 0
                }
                W.storePlanes(W.zigzag((value(i) &- predicted) & W.mask), output, i, count)
            }
            rowStart = rowEnd
        }
    }

    private static func inverse<W: SampleWord>(_: W.Type, _ transform: PixelTransform, _ geometry: PixelGeometry,
                                              _ source: UnsafeRawBufferPointer, _ destination: UnsafeMutableRawBufferPointer) {
        let count = source.count / W.bytes
        let tail = source.count - count * W.bytes
        guard let input = source.baseAddress, let output = destination.baseAddress else { return }
        if tail > 0 { output.storeBytes(of: source[source.count - 1], toByteOffset: destination.count - 1, as: UInt8.self) }
        if transform == .shuffle {
            for i in 0..<count { W.store(W.loadPlanes(input, i, count), output, i) }
            return
        }
        let bias: UInt32 = geometry.isSigned ? W.signBit : 0
        // Reconstructed samples are read back from the output, which holds original (unbiased) bytes.
        @inline(__always) func value(_ i: Int) -> UInt32 { W.load(UnsafeRawPointer(output), i) ^ bias }
        let width = geometry.rowSamples, stride = geometry.samplesPerPixel
        var rowStart = 0
        while rowStart < count {
            let rowEnd = min(count, rowStart + width)
            for i in rowStart..<rowEnd {
                let predicted: UInt32
                if i - rowStart >= stride {
                    if transform == .med && rowStart > 0 {
                        predicted = median(value(i - stride), value(i - width), value(i - width - stride))
                    } else {
                        predicted = value(i - stride)
                    }
                } else {
                    predicted = rowStart > 0 ? value(i - width) : 0
                }
                let residual = W.unzigzag(W.loadPlanes(input, i, count))
                W.store(((predicted &+ residual) & W.mask) ^ bias, output, i)
            }
            rowStart = rowEnd
        }
    }
}

/// One sample width: how to load and store a sample and its byte planes, widened to UInt32.
protocol SampleWord {
    static var bytes: Int { get }
    static var mask: UInt32 { get }
    static var signBit: UInt32 { get }
    static func load(_ base: UnsafeRawPointer, _ index: Int) -> UInt32
    static func store(_ value: UInt32, _ base: UnsafeMutableRawPointer, _ index: Int)
    static func storePlanes(_ value: UInt32, _ base: UnsafeMutableRawPointer, _ index: Int, _ count: Int)
    static func loadPlanes(_ base: UnsafeRawPointer, _ index: Int, _ count: Int) -> UInt32
}

extension SampleWord {
    /// Small residuals of either sign become small unsigned values, so the high byte plane is mostly zero.
    @inline(__always) static func zigzag(_ residual: UInt32) -> UInt32 {
        let negative = residual & signBit != 0
        return ((residual << 1) ^ (negative ? mask : 0)) & mask
    }

    @inline(__always) static func unzigzag(_ value: UInt32) -> UInt32 {
        ((value >> 1) ^ (value & 1 != 0 ? mask : 0)) & mask
    }
}

enum Word16: SampleWord {
    static let bytes = 2
    static let mask: UInt32 = 0xFFFF
    static let signBit: UInt32 = 0x8000
    @inline(__always) static func load(_ base: UnsafeRawPointer, _ index: Int) -> UInt32 {
        UInt32(base.load(fromByteOffset: 2 * index, as: UInt8.self))
            | UInt32(base.load(fromByteOffset: 2 * index + 1, as: UInt8.self)) << 8
    }
    @inline(__always) static func store(_ value: UInt32, _ base: UnsafeMutableRawPointer, _ index: Int) {
        base.storeBytes(of: UInt8(truncatingIfNeeded: value), toByteOffset: 2 * index, as: UInt8.self)
        base.storeBytes(of: UInt8(truncatingIfNeeded: value >> 8), toByteOffset: 2 * index + 1, as: UInt8.self)
    }
    @inline(__always) static func storePlanes(_ value: UInt32, _ base: UnsafeMutableRawPointer, _ index: Int, _ count: Int) {
        base.storeBytes(of: UInt8(truncatingIfNeeded: value), toByteOffset: index, as: UInt8.self)
        base.storeBytes(of: UInt8(truncatingIfNeeded: value >> 8), toByteOffset: count + index, as: UInt8.self)
    }
    @inline(__always) static func loadPlanes(_ base: UnsafeRawPointer, _ index: Int, _ count: Int) -> UInt32 {
        UInt32(base.load(fromByteOffset: index, as: UInt8.self))
            | UInt32(base.load(fromByteOffset: count + index, as: UInt8.self)) << 8
    }
}

enum Word8: SampleWord {
    static let bytes = 1
    static let mask: UInt32 = 0xFF
    static let signBit: UInt32 = 0x80
    @inline(__always) static func load(_ base: UnsafeRawPointer, _ index: Int) -> UInt32 {
        UInt32(base.load(fromByteOffset: index, as: UInt8.self))
    }
    @inline(__always) static func store(_ value: UInt32, _ base: UnsafeMutableRawPointer, _ index: Int) {
        base.storeBytes(of: UInt8(truncatingIfNeeded: value), toByteOffset: index, as: UInt8.self)
    }
    @inline(__always) static func storePlanes(_ value: UInt32, _ base: UnsafeMutableRawPointer, _ index: Int, _ count: Int) {
        store(value, base, index)
    }
    @inline(__always) static func loadPlanes(_ base: UnsafeRawPointer, _ index: Int, _ count: Int) -> UInt32 {
        load(base, index)
    }
}
