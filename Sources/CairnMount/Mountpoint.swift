import Glibc

/// Checks made before mounting, each failing with one line that says what to do.
public enum Mountpoint {
    public enum Problem: Error, CustomStringConvertible {
        case noFuseDevice(String)
        case missing(String)
        case notDirectory(String)
        case inUse(String)
        case stale(String, String)

        public var description: String {
            switch self {
            case .noFuseDevice(let reason):
                "cannot use /dev/fuse (\(reason)): install fuse3, and in a container pass --device /dev/fuse --cap-add SYS_ADMIN"
            case .missing(let path): "mountpoint \(path) does not exist: create the folder first"
            case .notDirectory(let path): "mountpoint \(path) is not a folder"
            case .inUse(let path): "\(path) is already a mount point: unmount it first (fusermount3 -u \(path))"
            case .stale(let path, let reason):
                "\(path) is left mounted by a daemon that died and cannot be detached (\(reason)): run fusermount3 -uz \(path)"
            }
        }
    }

    /// /dev/fuse must be there and openable for reading and writing.
    public static func checkFuseDevice() throws(Problem) {
        if access("/dev/fuse", R_OK | W_OK) != 0 { throw .noFuseDevice(String(cString: strerror(errno))) }
    }

    /// The folder must exist and not be mounted on. A mount whose daemon died (`kill -9`: every
    /// access fails with ENOTCONN) is detached first; returns true when that happened.
    @discardableResult
    public static func prepare(_ path: String) throws(Problem) -> Bool {
        var recovered = false
        // statvfs reaches a FUSE daemon even when the kernel still caches the folder's attributes.
        var filesystem = statvfs()
        if statvfs(path, &filesystem) != 0 && (errno == ENOTCONN || errno == ECONNABORTED) {
            try detachStale(path)
            recovered = true
        }
        var info = stat()
        if stat(path, &info) != 0 {
            if errno == ENOENT { throw .missing(path) }
            throw recovered ? .stale(path, String(cString: strerror(errno))) : .missing(path + " (" + String(cString: strerror(errno)) + ")")
        }
        guard info.st_mode & S_IFMT == S_IFDIR else { throw .notDirectory(path) }
        var parent = stat()
        guard stat(path + "/..", &parent) == 0 else { return recovered }
        if parent.st_dev != info.st_dev || parent.st_ino == info.st_ino { throw .inUse(path) }
        return recovered
    }

    private static func detachStale(_ path: String) throws(Problem) {
        if umount2(path, Int32(MNT_DETACH)) == 0 { return }
        // Not root: the setuid helper may detach a mount its caller made.
        var pid = pid_t()
        let arguments = ["fusermount3", "-u", "-z", path]
        var argv = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        guard posix_spawnp(&pid, "fusermount3", nil, nil, &argv, environ) == 0 else {
            throw .stale(path, "fusermount3 not found")
        }
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        if status != 0 { throw .stale(path, "fusermount3 -uz failed") }
    }
}
