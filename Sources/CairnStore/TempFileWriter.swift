/// Appends to a new temp file. Output collects in an aligned staging buffer; once a file outgrows
/// it, the file switches to O_DIRECT (where the filesystem allows), so large blobs go straight to
/// the device without being copied into (and evicting) the page cache: on a VM, first-touch
/// page-cache writes cost ~25% of ingest CPU (Tools/bench). Small files stay buffered, because a
/// direct write waits for the device and a group commit flushes many small files at once.
final class TempFileWriter {
    let file: PosixFile
    private(set) var isDirect = false
    private let preferDirect: Bool
    private let staging: UnsafeMutableRawBufferPointer
    private var fill = 0
    private var flushed: UInt64 = 0
    /// Logical length: bytes appended so far.
    var length: UInt64 { flushed + UInt64(fill) }

    static let alignment = 4096

    /// `staging` must be aligned to `alignment` and a multiple of it in size; it stays the caller's.
    init(path: String, staging: UnsafeMutableRawBufferPointer, preferDirect: Bool = true) throws {
        precondition(Int(bitPattern: staging.baseAddress) % Self.alignment == 0 && staging.count % Self.alignment == 0)
        file = try PosixFile.createExclusive(path)
        self.preferDirect = preferDirect
        self.staging = staging
    }

    func append(_ bytes: UnsafeRawBufferPointer) throws {
        var rest = bytes
        while !rest.isEmpty {
            let take = min(staging.count - fill, rest.count)
            (staging.baseAddress! + fill).copyMemory(from: rest.baseAddress!, byteCount: take)
            fill += take
            rest = UnsafeRawBufferPointer(rebasing: rest[take...])
            if fill == staging.count {
                if flushed == 0 && preferDirect { isDirect = file.enableDirectIO() }
                try file.write(UnsafeRawBufferPointer(staging), at: flushed)
                flushed += UInt64(fill)
                fill = 0
            }
        }
    }

    /// Writes what is staged; a direct file pads to the alignment O_DIRECT needs, then trims it.
    func finish() throws {
        guard fill > 0 else { return }
        let end = length
        var count = fill
        if isDirect {
            count = (fill + Self.alignment - 1) / Self.alignment * Self.alignment
            (staging.baseAddress! + fill).initializeMemory(as: UInt8.self, repeating: 0, count: count - fill)
        }
        try file.write(UnsafeRawBufferPointer(rebasing: staging[0..<count]), at: flushed)
        flushed = end
        fill = 0
        if isDirect { try file.truncate(to: end) }
    }
}
