import CFuse
import Glibc
import Synchronization

/// A libfuse low-level session serving a `MountFilesystem` at a mountpoint: mounts it, runs the
/// multithreaded loop until SIGINT/SIGTERM/SIGHUP or `fusermount3 -u`, and unmounts.
public final class FuseSession: Sendable {
    public let mountpoint: String
    private let filesystem: MountFilesystem
    /// The `struct fuse_session *`, as a bit pattern (0 before mounting and after destroying).
    private let session = Atomic<UInt>(0)
    /// Held while the kernel is notified and while the session is torn down, so a notification
    /// never reaches a freed session.
    private let notifying = Mutex(())

    public init(filesystem: MountFilesystem, mountpoint: String) {
        self.filesystem = filesystem
        self.mountpoint = mountpoint
    }

    /// Creates the session and mounts it. `allowOther` lets other users (a container's) read.
    public func mount(allowOther: Bool) throws(MountError) {
        var options = "ro,default_permissions,fsname=cairn,subtype=cairn"
        if allowOther { options += ",allow_other" }
        var operations = Self.operations()
        let userdata = Unmanaged.passUnretained(filesystem).toOpaque()
        guard let created = cairn_fuse_session_new(options, &operations, userdata) else {
            throw .session("libfuse refused the session options '\(options)'")
        }
        guard fuse_session_mount(created, mountpoint) == 0 else {
            fuse_session_destroy(created)
            throw .mountFailed(mountpoint)
        }
        session.store(UInt(bitPattern: created), ordering: .sequentiallyConsistent)
    }

    /// Holds SIGINT, SIGTERM and SIGHUP pending in the calling thread (and the threads it starts),
    /// from before mounting until `serve`, so none can leave a mount without its daemon.
    public static func holdExitSignals(_ hold: Bool) { cairn_block_exit_signals(hold ? 1 : 0) }

    /// Serves requests until the session ends (a signal, `fusermount3 -u`). Afterwards the exit
    /// signals are ignored, so a second Ctrl-C cannot cut short the last audit records.
    public func serve(threads: Int) {
        guard let se = handle else { return }
        if fuse_set_signal_handlers(se) != 0 { filesystem.logger.error("cannot install signal handlers: stop with fusermount3 -u") }
        if cairn_fuse_loop_mt(se, UInt32(max(1, threads))) != 0 {
            filesystem.logger.error("the FUSE session loop ended with an error")
        }
        fuse_remove_signal_handlers(se)
        for exitSignal in [SIGINT, SIGTERM, SIGHUP] { signal(exitSignal, SIG_IGN) }
    }

    /// Unmounts and frees the session; call after everything that notifies the kernel has stopped.
    public func teardown() {
        notifying.withLock { _ in
            guard let se = handle else { return }
            session.store(0, ordering: .sequentiallyConsistent)
            fuse_session_unmount(se)
            fuse_session_destroy(se)
        }
    }

    private var handle: OpaquePointer? { OpaquePointer(bitPattern: session.load(ordering: .sequentiallyConsistent)) }

    /// Raises the kernel's readahead for this mount (its bdi's `read_ahead_kb`, 128 by default): a
    /// file is then fetched in one or two requests instead of one per 128 KiB, each of which costs
    /// a round trip to the daemon (40% faster cold reads of 0.5 MB files here). Needs root;
    /// returns false when the setting could not be written. Call once the loop serves requests.
    func widenReadahead(kibibytes: Int) -> Bool {
        var info = stat()
        guard stat(mountpoint, &info) == 0 else { return false }
        let device = UInt64(info.st_dev)
        let major = ((device >> 8) & 0xfff) | ((device >> 32) & ~UInt64(0xfff))
        let minor = (device & 0xff) | ((device >> 12) & ~UInt64(0xff))
        let setting = "/sys/class/bdi/\(major):\(minor)/read_ahead_kb"
        let file = open(setting, O_WRONLY | O_CLOEXEC)
        guard file >= 0 else { return false }
        defer { close(file) }
        let text = Array("\(kibibytes)\n".utf8)
        return text.withUnsafeBytes { write(file, $0.baseAddress, $0.count) } == text.count
    }

    /// Tells the kernel a name is gone (or changed) so it stops answering from its caches.
    func invalidate(entry name: String, in parent: UInt64) {
        notifying.withLock { _ in
            guard let se = handle else { return }
            _ = name.withCString { fuse_lowlevel_notify_inval_entry(se, parent, $0, strlen($0)) }
        }
    }

    /// Drops the kernel's cached attributes and pages of an inode.
    func invalidate(inode: UInt64) {
        notifying.withLock { _ in
            guard let se = handle else { return }
            _ = fuse_lowlevel_notify_inval_inode(se, inode, 0, 0)
        }
    }

    // MARK: - The C callbacks

    private static func operations() -> fuse_lowlevel_ops {
        var ops = fuse_lowlevel_ops()
        ops.lookup = { req, parent, name in
            guard let fs = mountFilesystem(of: req), let name else { return replyError(req, ENOENT) }
            guard let entry = fs.lookup(parent: parent, name: String(cString: name)) else { return replyError(req, ENOENT) }
            var param = fuse_entry_param()
            param.ino = entry.inode
            param.attr = fs.attributes(of: entry)
            param.attr_timeout = MountFilesystem.cacheSeconds
            param.entry_timeout = MountFilesystem.cacheSeconds
            _ = fuse_reply_entry(req, &param)
        }
        ops.getattr = { req, inode, _ in
            guard let fs = mountFilesystem(of: req), let entry = fs.entry(inode) else { return replyError(req, ENOENT) }
            var attributes = fs.attributes(of: entry)
            _ = fuse_reply_attr(req, &attributes, MountFilesystem.cacheSeconds)
        }
        ops.open = { req, inode, info in
            guard let fs = mountFilesystem(of: req), let info else { return replyError(req, EIO) }
            let context = fuse_req_ctx(req)
            let requester = MountFilesystem.Requester(uid: context?.pointee.uid ?? uid_t.max, pid: context?.pointee.pid ?? -1)
            switch fs.openFile(inode, flags: info.pointee.flags, requester: requester) {
            case .failed(let code): replyError(req, code)
            case .opened(let handle):
                cairn_fuse_open_cached(info, handle)
                _ = fuse_reply_open(req, info)
            case .openedDocument(let handle):
                cairn_fuse_open_direct(info, handle)
                _ = fuse_reply_open(req, info)
            }
        }
        ops.read = { req, inode, size, offset, info in
            guard let fs = mountFilesystem(of: req), let info else { return replyError(req, EIO) }
            fs.read(handle: info.pointee.fh, inode: inode, count: size, offset: offset) { result in
                switch result {
                case .failed(let code): replyError(req, code)
                case .bytes(let bytes):
                    _ = fuse_reply_buf(req, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count)
                }
            }
        }
        ops.release = { req, _, info in
            if let fs = mountFilesystem(of: req), let info { fs.release(handle: info.pointee.fh) }
            replyError(req, 0)
        }
        ops.opendir = { req, inode, info in
            guard let fs = mountFilesystem(of: req), let info else { return replyError(req, EIO) }
            switch fs.openDirectory(inode) {
            case .failed(let code): replyError(req, code)
            case .opened(let handle), .openedDocument(let handle):
                info.pointee.fh = handle
                _ = fuse_reply_open(req, info)
            }
        }
        ops.readdir = { req, inode, size, offset, info in
            guard let fs = mountFilesystem(of: req), let info, let tree = fs.directorySnapshot(info.pointee.fh) else {
                return replyError(req, EBADF)
            }
            listDirectory(fs, tree: tree, req: req, inode: inode, size: size, offset: offset)
        }
        ops.releasedir = { req, _, info in
            if let fs = mountFilesystem(of: req), let info { fs.closeDirectory(info.pointee.fh) }
            replyError(req, 0)
        }
        ops.statfs = { req, _ in
            guard let fs = mountFilesystem(of: req) else { return replyError(req, EIO) }
            var stats = statvfs()
            let tree = fs.tree
            let bytes = tree.totalBytes
            stats.f_bsize = 4096
            stats.f_frsize = 4096
            stats.f_blocks = fsblkcnt_t((bytes + 4095) / 4096)
            stats.f_files = fsfilcnt_t(tree.count)
            stats.f_namemax = 255
            _ = fuse_reply_statfs(req, &stats)
        }
        return ops
    }

    /// Lists a folder from the picture taken when it was opened. Offsets are positions in its
    /// name-ordered list (0 and 1 are `.` and `..`), so a listing read in several calls neither
    /// repeats nor skips a name, whatever the store does meanwhile.
    fileprivate static func listDirectoryImpl(_ fs: MountFilesystem, tree: MountTree, req: fuse_req_t?, inode: UInt64, size: Int, offset: off_t) {
        guard let folder = tree.entry(inode) else { return replyError(req, ENOENT) }
        guard folder.isDirectory else { return replyError(req, ENOTDIR) }
        let children = tree.children(of: inode).filter { fs.visible($0, in: tree) != nil }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(size, 1), alignment: 8)
        defer { buffer.deallocate() }
        var used = 0
        var position = Int(max(0, offset))
        let total = children.count + 2
        while position < total {
            let name: String
            var attributes = stat()
            switch position {
            case 0:
                name = "."
                attributes = fs.attributes(of: folder)
            case 1:
                name = ".."
                attributes.st_ino = ino_t(folder.parent)
                attributes.st_mode = S_IFDIR
            default:
                let child = children[position - 2]
                name = child.name
                attributes.st_ino = ino_t(child.inode)
                attributes.st_mode = child.isDirectory ? S_IFDIR : S_IFREG
            }
            let needed = name.withCString { cName in
                fuse_add_direntry(req, buffer.baseAddress.map { $0.assumingMemoryBound(to: CChar.self) + used }, size - used,
                                  cName, &attributes, off_t(position + 1))
            }
            if needed > size - used { break }
            used += needed
            position += 1
        }
        _ = fuse_reply_buf(req, buffer.baseAddress?.assumingMemoryBound(to: CChar.self), used)
    }

}

/// The filesystem a request is for. Every callback starts here, so it also keeps the exit signals
/// away from libfuse's workers (and the decode threads they start): a signal taken there would
/// end the session without waking the loop's thread.
private func mountFilesystem(of req: fuse_req_t?) -> MountFilesystem? {
    cairn_block_exit_signals_in_worker()
    guard let pointer = fuse_req_userdata(req) else { return nil }
    return Unmanaged<MountFilesystem>.fromOpaque(pointer).takeUnretainedValue()
}

private func replyError(_ req: fuse_req_t?, _ code: Int32) {
    _ = fuse_reply_err(req, code)
}

private func listDirectory(_ fs: MountFilesystem, tree: MountTree, req: fuse_req_t?, inode: UInt64, size: Int, offset: off_t) {
    FuseSession.listDirectoryImpl(fs, tree: tree, req: req, inode: inode, size: size, offset: offset)
}

public enum MountError: Error, CustomStringConvertible {
    case session(String)
    case mountFailed(String)

    public var description: String {
        switch self {
        case .session(let detail): detail
        case .mountFailed(let path): "cannot mount at \(path) (libfuse's reason is above)"
        }
    }
}
