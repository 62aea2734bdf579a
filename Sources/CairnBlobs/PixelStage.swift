/// Native (uncompressed) pixel data as the pixel stage sees it: little-endian samples of one or two
/// bytes, `samplesPerPixel` interleaved per pixel (1 for planar or monochrome data), `columns` per row.
public struct PixelGeometry: Sendable, Hashable {
    public let bytesPerSample: Int
    public let samplesPerPixel: Int
    public let columns: Int
    /// Two's-complement samples (PixelRepresentation 1): predicted in signed order.
    public let isSigned: Bool

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
    /// The frame's rows (one component, sign bit flipped when signed) as one lossless HTJ2K
    /// codestream (OpenJPH, reversible 5/3 wavelet); no inner codec. The codestream follows its
    /// own checksum (u32, low 32 bits of XXH64): OpenJPH only ever parses bytes that are exactly
    /// what Cairn's encoder wrote, since it can crash on damaged ones.
    case htj2k = 4

    /// Transforms that rearrange bytes for an inner zstd or LZ4 frame (all but HTJ2K).
    var isByteTransform: Bool { self != .htj2k }
}

/// The 16-byte header that starts every pixel frame in a blob: magic "CPX1", transform, inner
/// codec, geometry. All little-endian; reserved bytes are zero.
public struct PixelFrameHeader: Sendable, Equatable {
    public let transform: PixelTransform
    public let codec: BlobCodec
    public let geometry: PixelGeometry

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
        case .raw, .pixel: return 0  // none: HTJ2K frames carry their own coding
        }
    }

    /// Writes the header into the first `size` bytes of `buffer`.
    public func write(into buffer: UnsafeMutableRawBufferPointer) {
        precondition(buffer.count >= Self.size)
        buffer.storeBytes(of: Self.magic.littleEndian, toByteOffset: 0, as: UInt32.self)
        buffer[4] = transform.rawValue
        buffer[5] = Self.codecID(codec)
        buffer[6] = UInt8(geometry.bytesPerSample)
        buffer[7] = UInt8(geometry.samplesPerPixel)
        buffer.storeBytes(of: UInt32(geometry.columns).littleEndian, toByteOffset: 8, as: UInt32.self)
        buffer[12] = geometry.isSigned ? 1 : 0
        buffer[13] = 0
        buffer[14] = 0
        buffer[15] = 0
    }

    public func encoded() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Self.size)
        out.withUnsafeMutableBytes { write(into: $0) }
        return out
    }

    /// Parses a header; nil when any field is out of range (the frame is damaged).
    public static func parse(_ bytes: UnsafeRawBufferPointer) -> PixelFrameHeader? {
        guard bytes.count >= size, readU32(bytes, 0) == magic,
              let transform = PixelTransform(rawValue: bytes[4]),
              bytes[12] & 0xFE == 0, bytes[13] == 0, bytes[14] == 0, bytes[15] == 0
        else { return nil }
        let codec: BlobCodec
        switch (bytes[5], transform) {
        case (1, _) where transform.isByteTransform: codec = .zstd
        case (2, _) where transform.isByteTransform: codec = .lz4
        case (0, .htj2k): codec = .raw
        default: return nil
        }
        guard let geometry = PixelGeometry(bytesPerSample: Int(bytes[6]), samplesPerPixel: Int(bytes[7]),
                                           columns: Int(readU32(bytes, 8)), isSigned: bytes[12] == 1),
              transform != .shuffle || geometry.bytesPerSample == 2,
              transform != .htj2k || geometry.samplesPerPixel == 1
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
/// Each runs in passes over a sample array (`scratch`, at least the frame's size): loading,
/// predicting and storing are separate loops the compiler vectorises; only the inverse's running
/// reconstruction is serial.
public enum PixelCoder {
    /// Writes the transform of `source` into `destination` (the same size).
    public static func forward(_ transform: PixelTransform, _ geometry: PixelGeometry, _ source: UnsafeRawBufferPointer,
                               into destination: UnsafeMutableRawBufferPointer, scratch: UnsafeMutableRawBufferPointer) {
        precondition(source.count == destination.count && scratch.count >= source.count)
        precondition(transform.isByteTransform, "HTJ2K frames are coded by FrameEncoder")
        if geometry.bytesPerSample == 2 {
            forward(UInt16.self, transform, geometry, source, destination, scratch)
        } else {
            forward(UInt8.self, transform, geometry, source, destination, scratch)
        }
    }

    /// Restores what `forward` transformed: `source` holds the transformed frame, `destination`
    /// (the same size) receives the original bytes.
    public static func inverse(_ transform: PixelTransform, _ geometry: PixelGeometry, _ source: UnsafeRawBufferPointer,
                               into destination: UnsafeMutableRawBufferPointer, scratch: UnsafeMutableRawBufferPointer) {
        precondition(source.count == destination.count && scratch.count >= source.count)
        precondition(transform.isByteTransform, "HTJ2K frames are decoded by FrameDecoder")
        if geometry.bytesPerSample == 2 {
            inverse(UInt16.self, transform, geometry, source, destination, scratch)
        } else {
            inverse(UInt8.self, transform, geometry, source, destination, scratch)
        }
    }

    /// Flips the sign bit of every whole sample (two's complement to offset order and back), or copies.
    public static func flipSigns(_ geometry: PixelGeometry, _ source: UnsafeRawBufferPointer,
                                 into destination: UnsafeMutableRawBufferPointer) {
        precondition(source.count == destination.count)
        if source.count > 0 && source.baseAddress != UnsafeRawPointer(destination.baseAddress) { destination.copyMemory(from: source) }
        guard geometry.isSigned, let bytes = destination.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
        let width = geometry.bytesPerSample
        var index = width - 1
        while index < destination.count {
            bytes[index] ^= 0x80
            index += width
        }
    }

    @inline(__always)
    static func median<T: FixedWidthInteger & UnsignedInteger>(_ a: T, _ b: T, _ c: T) -> T {
        let high = max(a, b), low = min(a, b)
        return c >= high ? low : (c <= low ? high : a &+ b &- c)
    }

    /// Small residuals of either sign become small unsigned values, so the high byte plane is mostly zero.
    @inline(__always)
    static func zigzag<T: FixedWidthInteger & UnsignedInteger>(_ residual: T) -> T {
        (residual << 1) ^ (T.zero &- (residual >> (T.bitWidth - 1)))
    }

    @inline(__always)
    static func unzigzag<T: FixedWidthInteger & UnsignedInteger>(_ value: T) -> T {
        (value >> 1) ^ (T.zero &- (value & 1))
    }

    @inline(__always)
    static func signBias<T: FixedWidthInteger & UnsignedInteger>(_: T.Type, _ geometry: PixelGeometry) -> T {
        geometry.isSigned ? T(1) << (T.bitWidth - 1) : 0
    }

    /// What both directions start with: the number of whole samples, the trailing byte carried
    /// over as is, and the sample array in `scratch`. Nil for an empty frame.
    private static func prepare<T: FixedWidthInteger & UnsignedInteger>(
        _: T.Type, _ source: UnsafeRawBufferPointer, _ destination: UnsafeMutableRawBufferPointer,
        _ scratch: UnsafeMutableRawBufferPointer
    ) -> (Int, UnsafeRawPointer, UnsafeMutableRawPointer, UnsafeMutablePointer<T>)? {
        let count = source.count / MemoryLayout<T>.size
        guard let input = source.baseAddress, let output = destination.baseAddress, let base = scratch.baseAddress else { return nil }
        if source.count > count * MemoryLayout<T>.size {
            output.storeBytes(of: source[source.count - 1], toByteOffset: destination.count - 1, as: UInt8.self)
        }
        return (count, input, output, base.bindMemory(to: T.self, capacity: count))
    }

    private static func forward<T: FixedWidthInteger & UnsignedInteger>(
        _: T.Type, _ transform: PixelTransform, _ geometry: PixelGeometry, _ source: UnsafeRawBufferPointer,
        _ destination: UnsafeMutableRawBufferPointer, _ scratch: UnsafeMutableRawBufferPointer
    ) {
        let width = MemoryLayout<T>.size
        guard let (count, input, output, values) = prepare(T.self, source, destination, scratch) else { return }
        let bias = transform == .shuffle ? 0 : signBias(T.self, geometry)
        for i in 0..<count { values[i] = T(littleEndian: input.loadUnaligned(fromByteOffset: i * width, as: T.self)) ^ bias }
        let low = output.assumingMemoryBound(to: UInt8.self), high = low + count
        @inline(__always) func put(_ i: Int, _ value: T) {
            low[i] = UInt8(truncatingIfNeeded: value)
            if width == 2 { high[i] = UInt8(truncatingIfNeeded: value >> 8) }
        }
        if transform == .shuffle {
            for i in 0..<count { put(i, values[i]) }
            return
        }
        let row = geometry.rowSamples, stride = geometry.samplesPerPixel
        var rowStart = 0
        while rowStart < count {
            let rowEnd = min(count, rowStart + row)
            let leftStart = min(rowEnd, rowStart + stride)
            for i in rowStart..<leftStart { put(i, zigzag(values[i] &- (rowStart > 0 ? values[i - row] : 0))) }
            if transform == .med && rowStart > 0 {
                for i in leftStart..<rowEnd {
                    put(i, zigzag(values[i] &- median(values[i - stride], values[i - row], values[i - row - stride])))
                }
            } else {
                for i in leftStart..<rowEnd { put(i, zigzag(values[i] &- values[i - stride])) }
            }
            rowStart = rowEnd
        }
    }

    private static func inverse<T: FixedWidthInteger & UnsignedInteger>(
        _: T.Type, _ transform: PixelTransform, _ geometry: PixelGeometry, _ source: UnsafeRawBufferPointer,
        _ destination: UnsafeMutableRawBufferPointer, _ scratch: UnsafeMutableRawBufferPointer
    ) {
        let width = MemoryLayout<T>.size
        guard let (count, input, output, values) = prepare(T.self, source, destination, scratch) else { return }
        let low = input.assumingMemoryBound(to: UInt8.self), high = low + count
        @inline(__always) func planes(_ i: Int) -> T {
            width == 2 ? T(truncatingIfNeeded: UInt16(low[i]) | UInt16(high[i]) << 8) : T(truncatingIfNeeded: low[i])
        }
        var bias: T = 0
        if transform == .shuffle {
            for i in 0..<count { values[i] = planes(i) }
        } else {
            bias = signBias(T.self, geometry)
            for i in 0..<count { values[i] = unzigzag(planes(i)) }
            let row = geometry.rowSamples, stride = geometry.samplesPerPixel
            var rowStart = 0
            while rowStart < count {
                let rowEnd = min(count, rowStart + row)
                let leftStart = min(rowEnd, rowStart + stride)
                if rowStart > 0 { for i in rowStart..<leftStart { values[i] = values[i] &+ values[i - row] } }
                if transform == .med && rowStart > 0 {
                    for i in leftStart..<rowEnd {
                        values[i] = values[i] &+ median(values[i - stride], values[i - row], values[i - row - stride])
                    }
                } else if stride == 1 && leftStart < rowEnd {
                    var running = values[rowStart]
                    for i in leftStart..<rowEnd {
                        running = running &+ values[i]
                        values[i] = running
                    }
                } else {
                    for i in leftStart..<rowEnd { values[i] = values[i] &+ values[i - stride] }
                }
                rowStart = rowEnd
            }
        }
        for i in 0..<count { output.storeBytes(of: (values[i] ^ bias).littleEndian, toByteOffset: i * width, as: T.self) }
    }
}
