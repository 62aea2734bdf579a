/// Where an instance's pixel data and each of its image frames start in the file, so the blob
/// writer can begin a new compressed frame there.
public struct PixelDataLayout: Sendable, Equatable {
    /// Number of Frames, or 1 when there is pixel data but no such attribute; nil without pixel data.
    public var frames: Int?
    /// File offset of the Pixel Data value, and of each frame (for encapsulated data: of the
    /// item holding the frame's first fragment). Nil/empty when unknown or when the data set was deflated.
    public var pixelDataOffset: UInt64?
    public var frameOffsets: [UInt64] = []
    /// Bytes per frame of native (uncompressed) pixel data, when the frames could be located.
    public var frameLength: Int?
    /// Native little-endian pixel data with whole-byte samples: where it lies and how its samples
    /// are laid out (what the blob writer's pixel stage needs). Nil for encapsulated, big-endian
    /// or deflated data and for geometry PS3.3 does not allow.
    public var native: NativePixels?

    public struct NativePixels: Sendable, Equatable {
        public var range: Range<UInt64>
        public var bitsAllocated: Int
        public var samplesPerPixel: Int
        /// PlanarConfiguration 1: each component's samples in a plane of their own.
        public var isPlanar: Bool
        public var columns: Int
        public var isSigned: Bool
    }

    public init(file: DicomFile) {
        let ds = file.dataSet
        frames = ds.integer("NumberOfFrames") ?? (ds[.pixelData] != nil ? 1 : nil)
        guard file.offsetsAreFileOffsets, let pixels = ds[.pixelData] else { return }
        pixelDataOffset = UInt64(pixels.valueOffset)
        switch pixels.value {
        case .bulk(let offset, let length):
            let frameCount = max(1, frames ?? 1)
            // Division, not multiplication: a hostile NumberOfFrames must not overflow.
            if let frameSize = Self.nativeFrameLength(ds), frameCount <= length / frameSize, frameCount <= Self.maxIndexedFrames {
                frameOffsets = (0..<frameCount).map { UInt64(offset + $0 * frameSize) }
                frameLength = frameSize
            }
            if Self.nativeFrameLength(ds) != nil, !file.transferSyntax.bigEndian, let columns = ds.integer("Columns") {
                let samples = ds.integer("SamplesPerPixel") ?? 1
                native = NativePixels(range: UInt64(offset)..<UInt64(offset + length), bitsAllocated: ds.integer("BitsAllocated") ?? 16,
                                      samplesPerPixel: samples, isPlanar: samples > 1 && ds.integer("PlanarConfiguration") == 1,
                                      columns: columns, isSigned: ds.integer("PixelRepresentation") == 1)
            }
        case .encapsulated(let encapsulated):
            let frameCount = max(1, frames ?? 1)
            if frameCount <= Self.maxIndexedFrames {
                frameOffsets = Self.encapsulatedFrameStarts(encapsulated, frames: frameCount, extended: ds[.extendedOffsetTable])
            }
        default:
            break
        }
    }

    /// More frames than this are not located (the index row would hold a list of millions of
    /// offsets, from a file as small as its frames are tiny); such files are stored and served whole.
    public static let maxIndexedFrames = 100_000

    /// Bytes per frame of native pixel data, from Rows, Columns, SamplesPerPixel and BitsAllocated;
    /// nil unless each is in the range PS3.3 allows (so the product cannot overflow) and frames are
    /// whole bytes.
    public static func nativeFrameLength(_ ds: DataSet) -> Int? {
        let samples = ds.integer("SamplesPerPixel") ?? 1
        let bits = ds.integer("BitsAllocated") ?? 16
        guard let rows = ds.integer("Rows"), let columns = ds.integer("Columns"), (1...65535).contains(rows),
              (1...65535).contains(columns), (1...4).contains(samples), (1...64).contains(bits), bits % 8 == 0 else { return nil }
        return rows * columns * samples * (bits / 8)
    }

    /// Frame starts of encapsulated pixel data (PS3.5 A.4): from the Extended Offset Table, else
    /// the Basic Offset Table, else one fragment per frame when the counts agree.
    static func encapsulatedFrameStarts(_ pixels: EncapsulatedPixelData, frames: Int, extended: DataElement?) -> [UInt64] {
        guard let first = pixels.fragments.first else { return [] }
        let byItemOffset = Dictionary(pixels.fragments.map { ($0.itemOffset - first.itemOffset, $0.itemOffset) },
                                      uniquingKeysWith: { a, _ in a })
        if let extended, case .bytes(let bytes) = extended.value, bytes.count / 8 == frames, bytes.count % 8 == 0 {
            let offsets = (0..<frames).map { i -> Int in
                (0..<8).reduce(0) { $0 | Int(bytes[8 * i + $1]) << (8 * $1) }
            }
            let starts = offsets.compactMap { byItemOffset[$0] }
            if starts.count == frames { return starts.map(UInt64.init) }
        }
        if pixels.basicOffsetTable.count == frames {
            let starts = pixels.basicOffsetTable.compactMap { byItemOffset[Int($0)] }
            if starts.count == frames { return starts.map(UInt64.init) }
        }
        if pixels.fragments.count == frames { return pixels.fragments.map { UInt64($0.itemOffset) } }
        if frames == 1 { return [UInt64(first.itemOffset)] }
        return []
    }

    /// Where the blob writer must start new frames: the Pixel Data value and each image frame.
    public var cutPoints: [UInt64] {
        var points = frameOffsets
        if let pixelDataOffset { points.append(pixelDataOffset) }
        return Array(Set(points)).sorted()
    }
}
