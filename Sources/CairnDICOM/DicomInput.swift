import Glibc

/// Fills a buffer with the bytes at an offset of the parsed stream (all of them, or throws).
public typealias DicomByteSource = (_ offset: Int, _ into: UnsafeMutableRawBufferPointer) throws -> Void

/// Random access to the bytes being parsed: a file or another byte source (a stored blob) read
/// through a sliding window (so a header parse reads only the first few kilobytes of a 2 GiB
/// file), or bytes in memory.
final class DicomInput {
    let size: Int
    private var window: [UInt8]
    private var windowStart = 0
    private let fd: Int32
    private let path: String
    private let source: DicomByteSource?
    /// Where a read starting at an offset may end without extra work (a stored blob's frame end),
    /// so a header parse does not decode the pixel data frame that follows the header.
    private let cheapEnd: ((Int) -> Int)?
    /// Holds a typical header whole; larger windows mostly read pixel bytes that ingest then reads
    /// again to store them (64 KiB parsed 35k CT headers/s, 16 KiB 50k/s).
    static let windowSize = 16 * 1024

    init(bytes: [UInt8]) {
        size = bytes.count
        window = bytes
        fd = -1
        path = "<memory>"
        source = nil
        cheapEnd = nil
    }

    init(size: Int, name: String, source: @escaping DicomByteSource, cheapEnd: ((Int) -> Int)?) {
        self.size = size
        window = []
        fd = -1
        path = name
        self.source = source
        self.cheapEnd = cheapEnd
    }

    init(path: String) throws {
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw DicomError.io("open \(path): \(String(cString: strerror(errno)))") }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            close(fd)
            throw DicomError.io("stat \(path): \(String(cString: strerror(errno)))")
        }
        size = Int(st.st_size)
        self.path = path
        window = []
        source = nil
        cheapEnd = nil
    }

    deinit { if fd >= 0 { close(fd) } }

    private func load(_ offset: Int, _ count: Int) throws {
        var preferred = Self.windowSize
        if let cheapEnd { preferred = min(preferred, max(1, cheapEnd(offset) - offset)) }
        let length = min(max(count, preferred), size - offset)
        var buffer = [UInt8](repeating: 0, count: length)
        if let source {
            do { try buffer.withUnsafeMutableBytes { try source(offset, $0) } } catch {
                throw DicomError.io("read \(path) at \(offset): \(error)")
            }
            window = buffer
            windowStart = offset
            return
        }
        var done = 0
        while done < length {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, length - done, off_t(offset + done)) }
            if n > 0 { done += n; continue }
            if n < 0 && errno == EINTR { continue }
            throw DicomError.io("read \(path) at \(offset + done): \(n == 0 ? "unexpected end" : String(cString: strerror(errno)))")
        }
        window = buffer
        windowStart = offset
    }

    @inline(__always)
    private func ensure(_ offset: Int, _ count: Int) throws {
        guard offset >= 0, count >= 0, offset <= size - count else {
            throw DicomError.truncated(offset: offset, needed: count, size: size)
        }
        if offset >= windowStart && offset + count <= windowStart + window.count { return }
        guard fd >= 0 || source != nil else { throw DicomError.truncated(offset: offset, needed: count, size: size) }
        try load(offset, count)
    }

    func u8(_ offset: Int) throws -> UInt8 {
        try ensure(offset, 1)
        return window[offset - windowStart]
    }

    func u16(_ offset: Int, bigEndian: Bool) throws -> UInt16 {
        try ensure(offset, 2)
        let i = offset - windowStart
        let a = UInt16(window[i]), b = UInt16(window[i + 1])
        return bigEndian ? a << 8 | b : b << 8 | a
    }

    func u32(_ offset: Int, bigEndian: Bool) throws -> UInt32 {
        try ensure(offset, 4)
        let i = offset - windowStart
        let a = UInt32(window[i]), b = UInt32(window[i + 1]), c = UInt32(window[i + 2]), d = UInt32(window[i + 3])
        return bigEndian ? a << 24 | b << 16 | c << 8 | d : d << 24 | c << 16 | b << 8 | a
    }

    func bytes(_ offset: Int, _ count: Int) throws -> [UInt8] {
        try ensure(offset, count)
        let i = offset - windowStart
        return Array(window[i..<i + count])
    }
}
