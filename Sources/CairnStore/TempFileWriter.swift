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
    private(set) var length: UInt64 = 0

    static let alignment = 4096

    /// `staging` must be aligned to `alignment` and a multiple of it in size; it stays the caller's.
    init(path: String, staging: UnsafeMutableRawBufferPointer, preferDirect: Bool = true) throws {
        precondition(Int(bitPattern: staging.baseAddress) % Self.alignment == 0 && staging.count % Self.alignment == 0)
        file = try PosixFile.createExclusive(path)
        self.preferDirect = preferDirect
        self.staging = staging
    }

    func append(_ bytes: UnsafeRawBufferPointer) throws {
        length += UInt64(bytes.count)
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

    /// Writes what is staged (padded to the alignment O_DIRECT needs, then trimmed).
    func finish() throws {
        guard fill > 0 else { return }
        guard isDirect else {
            try file.write(UnsafeRawBufferPointer(rebasing: staging[0..<fill]), at: flushed)
            flushed += UInt64(fill)
            fill = 0
            return
        }
        let padded = (fill + Self.alignment - 1) / Self.alignment * Self.alignment
        (staging.baseAddress! + fill).initializeMemory(as: UInt8.self, repeating: 0, count: padded - fill)
        try file.write(UnsafeRawBufferPointer(rebasing: staging[0..<padded]), at: flushed)
        flushed += UInt64(fill)
        fill = 0
        try file.truncate(to: length)
    }
}
