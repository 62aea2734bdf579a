import CPosix
import Glibc

/// A file descriptor with the few POSIX calls the store needs, each failing with
/// a `StoreError` that names the path. Not shared across threads.
final class PosixFile {
    let fd: Int32
    let path: String

    private init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { close(fd) }

    static func openForReading(_ path: String) throws -> PosixFile {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw StoreError.io(op: "open", path: path, errno: errno) }
        return PosixFile(fd: fd, path: path)
    }

    /// Creates a new file that must not exist yet (temp files have unique names).
    static func createExclusive(_ path: String, mode: mode_t = 0o444) throws -> PosixFile {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw StoreError.io(op: "create", path: path, errno: errno) }
        return PosixFile(fd: fd, path: path)
    }

    /// Linux's O_DIRECT (Glibc does not export it to Swift).
    static let directFlag: Int32 = cairn_o_direct()

    /// Turns on O_DIRECT for later writes; false where the filesystem does not support it.
    func enableDirectIO() -> Bool {
        let flags = fcntl(fd, F_GETFL)
        return flags >= 0 && fcntl(fd, F_SETFL, flags | Self.directFlag) == 0
    }

    /// Inode number and size from one fstat.
    var identity: (inode: UInt64, size: UInt64) {
        get throws {
            var st = stat()
            guard fstat(fd, &st) == 0 else { throw StoreError.io(op: "stat", path: path, errno: errno) }
            return (UInt64(st.st_ino), UInt64(st.st_size))
        }
    }

    var size: UInt64 {
        get throws {
            var st = stat()
            guard fstat(fd, &st) == 0 else { throw StoreError.io(op: "stat", path: path, errno: errno) }
            return UInt64(st.st_size)
        }
    }

    /// Reads up to `count` bytes at the current position; returns 0 at end of file.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n >= 0 { return n }
            if errno == EINTR { continue }
            throw StoreError.io(op: "read", path: path, errno: errno)
        }
    }

    /// Fills `buffer` from `offset`, failing if the file ends first.
    func readExactly(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        var done = 0
        while done < buffer.count {
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if n > 0 { done += n; continue }
            if n == 0 { throw StoreError.io(op: "read (unexpected end)", path: path, errno: EIO) }
            if errno == EINTR { continue }
            throw StoreError.io(op: "read", path: path, errno: errno)
        }
    }

    /// Writes all of `buffer` at `offset`.
    func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws {
        var done = 0
        while done < buffer.count {
            let n = pwrite(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if n > 0 { done += n; continue }
            if n < 0 && errno == EINTR { continue }
            let code = n == 0 ? EIO : errno
            if code == ENOSPC || code == EDQUOT || code == EFBIG { throw StoreError.diskFull(path: path) }
            throw StoreError.io(op: "write", path: path, errno: code)
        }
    }

    func truncate(to length: UInt64) throws {
        guard ftruncate(fd, off_t(length)) == 0 else { throw StoreError.io(op: "truncate", path: path, errno: errno) }
    }

    func sync() throws {
        guard fsync(fd) == 0 else {
            if errno == ENOSPC || errno == EDQUOT { throw StoreError.diskFull(path: path) }
            throw StoreError.io(op: "fsync", path: path, errno: errno)
        }
    }

    /// Advisory lock that the kernel drops when the process dies: marks a temp file as live.
    func tryLockExclusive() -> Bool { flock(fd, LOCK_EX | LOCK_NB) == 0 }

    func adviseSequential() {
        #if os(Linux)
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
        #endif
    }
}

/// Directory-level operations of the write path.
enum FileSystem {
    /// Flushes everything written to the filesystem holding `path` (data and metadata), in one call.
    static func syncFilesystem(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw StoreError.io(op: "open directory", path: path, errno: errno) }
        defer { close(fd) }
        guard cairn_syncfs(fd) == 0 else {
            if errno == ENOSPC || errno == EDQUOT { throw StoreError.diskFull(path: path) }
            throw StoreError.io(op: "syncfs", path: path, errno: errno)
        }
    }

    static func fsyncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw StoreError.io(op: "open directory", path: path, errno: errno) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw StoreError.io(op: "fsync directory", path: path, errno: errno) }
    }

    /// Creates the directory if missing; returns true when it was created (so the parent needs an fsync).
    @discardableResult
    static func makeDirectory(_ path: String) throws -> Bool {
        if mkdir(path, 0o755) == 0 { return true }
        if errno == EEXIST { return false }
        if errno == ENOSPC { throw StoreError.diskFull(path: path) }
        throw StoreError.io(op: "mkdir", path: path, errno: errno)
    }

    static func exists(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0
    }

    /// True when both paths exist and name the same inode (a hard link of one another).
    static func sameFile(_ a: String, _ b: String) -> Bool {
        var sa = stat(), sb = stat()
        return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino
    }

    static func fileSize(_ path: String) -> UInt64? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return UInt64(st.st_size)
    }

    static func remove(_ path: String) { unlink(path) }

    /// Lists a directory's entries (names only, without "." and "..").
    static func list(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else { throw StoreError.io(op: "opendir", path: path, errno: errno) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Free bytes for unprivileged writers on the filesystem holding `path`.
    static func freeBytes(_ path: String) -> UInt64? {
        var st = statvfs()
        guard statvfs(path, &st) == 0 else { return nil }
        return UInt64(st.f_bavail) * UInt64(st.f_frsize)
    }
}
