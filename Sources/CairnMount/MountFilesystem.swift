import CairnAudit
import CairnStore
import Dispatch
import Foundation
import Glibc
import Logging
import Prometheus
import Synchronization

/// The mount's state shared by libfuse's worker threads: the current picture of the datasets, the
/// open files, the counters. Requests never touch the index.
public final class MountFilesystem: Sendable {
    public let store: BlobStore
    public let datasets: [String]
    /// Who reads, as the audit records it (`cairn mount --subject`).
    public let actor: String
    public let audit: AuditQueue
    let logger: Logger
    let counters: MountCounters
    private let current: Mutex<MountTree>
    /// Subject folders erased after the current picture was read, and when each was hidden: gone
    /// at once, before the dataset is re-read (which takes a second at 100,000 instances).
    private let hidden = Mutex([UInt64: ContinuousClock.Instant]())
    private let open = Mutex(OpenFiles())
    /// Open folders and the picture each was opened in.
    private let directories = Mutex<(next: UInt64, open: [UInt64: MountTree])>((1, [:]))
    private let buffers = ReadBuffers()
    /// Raw blobs (no frame checksums) whose whole content matched their digest at a first open.
    private let checkedRaw = Mutex(Set<BlobDigest>())
    /// Owner of every file and folder: the user who mounted, and the group that may read.
    let owner: (uid: uid_t, gid: gid_t)

    /// Attribute and name lookups the kernel may cache: blobs never change, and everything that
    /// does change (erasure, new instances, index.json) is invalidated by `MountRefresher`.
    static let cacheSeconds = 3600.0

    public init(store: BlobStore, datasets: [String], actor: String, audit: AuditQueue, logger: Logger, group: gid_t? = nil) throws {
        self.store = store
        owner = (getuid(), group ?? getgid())
        self.datasets = datasets
        self.actor = actor
        self.audit = audit
        self.logger = logger
        counters = MountCounters(datasets: datasets.joined(separator: ","))
        current = Mutex(try Self.readTree(store: store, datasets: datasets))
    }

    public var tree: MountTree { current.withLock { $0 } }

    /// Reads the named datasets into a new picture, each with the content generation it was read at.
    static func readTree(store: BlobStore, datasets: [String]) throws -> MountTree {
        var pictured: [MountTree.Dataset] = []
        for id in datasets {
            guard let info = try store.dataset(id) else { throw StoreError.invalidArgument("no dataset '\(id)' in \(store.root)") }
            let (members, generation) = try store.members(of: id)
            pictured.append(MountTree.Dataset(id: id, createdAt: info.createdAt, members: members, generation: generation))
        }
        return MountTree.build(pictured)
    }

    /// Installs a picture whose reading began at `readStarted`, and returns the one it replaced.
    /// Folders hidden before that time are settled by it (their erasure was committed before they
    /// were hidden); those hidden since stay hidden, as the picture may predate their erasure.
    func replaceTree(_ tree: MountTree, readStarted: ContinuousClock.Instant) -> MountTree {
        current.withLock { old in
            defer {
                old = tree
                hidden.withLock { $0 = $0.filter { $0.value >= readStarted } }
            }
            return old
        }
    }

    /// Hides a subject folder of the current picture; returns its entries, for the kernel to forget.
    func hide(subject: String, in dataset: String) -> [MountEntry] {
        let tree = self.tree
        guard let top = tree.lookup(parent: MountTree.rootInode, name: dataset),
              let folder = tree.lookup(parent: top.inode, name: MountTree.subjectFolderName(subject)), folder.isDirectory
        else { return [] }
        hidden.withLock { $0[folder.inode] = .now }
        // The dataset's index.json changes too (it no longer lists the subject).
        return tree.subtree(folder.inode) + [tree.lookup(parent: top.inode, name: MountTree.indexName)].compactMap { $0 }
    }

    /// The entry, unless it is in a hidden (erased) subject folder.
    func visible(_ entry: MountEntry?, in tree: MountTree) -> MountEntry? {
        guard let entry else { return nil }
        let hiddenFolders = hidden.withLock { $0 }
        if hiddenFolders.isEmpty { return entry }
        if entry.content == .indexDocument {
            let size = UInt64(document(entry.inode, in: tree)?.count ?? 0)
            return MountEntry(inode: entry.inode, parent: entry.parent, name: entry.name, dataset: entry.dataset,
                              content: entry.content, size: size, modified: entry.modified)
        }
        var current = entry
        while true {
            if hiddenFolders[current.inode] != nil { return nil }
            guard current.inode != MountTree.rootInode, let parent = tree.entry(current.parent) else { return entry }
            current = parent
        }
    }

    /// A dataset's index.json as the picture has it, less the studies of hidden subjects.
    func document(_ inode: UInt64, in tree: MountTree) -> [UInt8]? {
        guard let original = tree.document(inode), let index = tree.entry(inode) else { return nil }
        let hiddenNames = Set(hidden.withLock { Array($0.keys) }.compactMap { folder -> String? in
            guard let entry = tree.entry(folder), entry.parent == index.parent else { return nil }
            return entry.name
        })
        if hiddenNames.isEmpty { return original }
        guard let studies = try? JSONSerialization.jsonObject(with: Data(original)) as? [[String: Any]],
              let kept = try? JSONSerialization.data(
                withJSONObject: studies.filter { !hiddenNames.contains($0["subjectName"] as? String ?? "") },
                options: [.withoutEscapingSlashes])
        else { return Array("[]".utf8) }  // fail closed: list nothing rather than an erased subject
        return Array(kept)
    }

    /// What lookups and attribute requests see: the current picture less hidden subjects.
    func entry(_ inode: UInt64) -> MountEntry? {
        let tree = self.tree
        return visible(tree.entry(inode), in: tree)
    }

    func lookup(parent: UInt64, name: String) -> MountEntry? {
        let tree = self.tree
        return visible(tree.lookup(parent: parent, name: name), in: tree)
    }

    // MARK: - Requests

    func attributes(of entry: MountEntry) -> stat {
        var attributes = stat()
        attributes.st_ino = ino_t(entry.inode)
        switch entry.content {
        case .directory(let subdirectories):
            attributes.st_mode = S_IFDIR | 0o550
            attributes.st_nlink = nlink_t(2 + subdirectories)
        case .blob, .damaged, .indexDocument:
            attributes.st_mode = S_IFREG | 0o440
            attributes.st_nlink = 1
        }
        attributes.st_size = off_t(clamping: entry.size)
        attributes.st_blocks = blkcnt_t(clamping: (entry.size + 511) / 512)
        // Tools size their buffers from this (cat, cp, Python): 128 KiB, as they would on a local disk;
        // a megabyte made cat map and fault in a fresh buffer for every file. Readahead still fetches 1 MiB.
        attributes.st_blksize = 128 << 10
        attributes.st_uid = owner.uid
        attributes.st_gid = owner.gid
        let time = timespec(tv_sec: time_t(entry.modified), tv_nsec: 0)
        attributes.st_mtim = time
        attributes.st_ctim = time
        attributes.st_atim = time
        return attributes
    }

    enum OpenResult {
        case opened(UInt64)
        /// A generated file (index.json): its content may change under its inode, so no page cache.
        case openedDocument(UInt64)
        case failed(Int32)
    }

    /// Who asked, from the request's context: recorded with the open.
    struct Requester: Sendable {
        var uid: uid_t
        var pid: pid_t
    }

    /// Opens a file for reading: a blob through a reader kept with the handle, `index.json` as
    /// the bytes of the picture it was opened in. Refused (EIO) when its audit record could not
    /// be kept: every handle holds a place in the audit queue until it is closed.
    func openFile(_ inode: UInt64, flags: Int32, requester: Requester) -> OpenResult {
        guard flags & O_ACCMODE == O_RDONLY else { return .failed(EROFS) }
        let tree = self.tree
        guard let entry = visible(tree.entry(inode), in: tree) else { return .failed(ENOENT) }
        let problem = audit.problem ?? (audit.pending + openCount >= audit.maxPending
            ? "\(audit.pending) audit records wait and \(openCount) files are open" : nil)
        if let problem {
            counters.refused.increment()
            logger.error("open refused: the audit cannot record it", metadata: ["problem": "\(problem)"])
            return .failed(EIO)
        }
        let file: OpenFile
        switch entry.content {
        case .directory:
            return .failed(EISDIR)
        case .damaged(let digest, let state):
            counters.failedOpens.increment()
            logger.error("open refused: verify found the blob \(state)", metadata: ["digest": "\(digest)"])
            return .failed(EIO)
        case .indexDocument:
            file = OpenFile(entry: entry, requester: requester, document: document(inode, in: tree) ?? [], reader: nil) {
                throw StoreError.invalidArgument("a generated document has no blob")
            }
        case .blob(let digest, let codec):
            do {
                let reader = try store.reader(digest, codec: codec)
                guard reader.size == entry.size else {
                    throw StoreError.corruptBlob(digest, path: reader.path, reason: "holds \(reader.size) bytes, the index says \(entry.size)")
                }
                if codec == .raw { try checkWhole(reader) }
                file = OpenFile(entry: entry, requester: requester, document: nil, reader: reader) { [store] in
                    try store.reader(digest, codec: codec)
                }
            } catch {
                if case StoreError.digestMismatch = error { counters.damagedReads.increment() }
                counters.failedOpens.increment()
                logger.error("open refused: the blob cannot be read as stored", metadata: ["digest": "\(digest)", "error": "\(error)"])
                return .failed(EIO)
            }
        }
        counters.opens.increment()
        let handle = open.withLock { $0.insert(file) }
        return file.document == nil ? .opened(handle) : .openedDocument(handle)
    }

    /// A raw blob has no frame checksums: before its first byte is served, its whole content must
    /// hash to its digest (once per blob and mount).
    private func checkWhole(_ reader: BlobReader) throws {
        if checkedRaw.withLock({ $0.contains(reader.digest) }) { return }
        try reader.checkDigest()
        _ = checkedRaw.withLock { $0.insert(reader.digest) }
    }

    enum ReadResult {
        case bytes(UnsafeRawBufferPointer)
        case failed(Int32)
    }

    /// Reads up to `count` bytes at `offset` and hands them to `reply` (which must copy them out).
    func read(handle: UInt64, inode: UInt64, count: Int, offset: Int, reply: (ReadResult) -> Void) {
        guard let file = open.withLock({ $0.files[handle] }) else { return reply(.failed(EBADF)) }
        // An erased subject's open files stop reading too: consent is withdrawn for reads in flight.
        guard let now = entry(inode), now.content == file.entry.content else {
            file.failed(ENOENT)
            return reply(.failed(ENOENT))
        }
        guard offset >= 0 else { return reply(.failed(EINVAL)) }
        let start = UInt64(offset)
        let end = min(file.entry.size, start + UInt64(max(0, count)))
        guard start < end else { return reply(.bytes(UnsafeRawBufferPointer(start: nil, count: 0))) }
        if let document = file.document {
            // The handle's own copy: its length, not the entry's, bounds the read.
            let from = Int(min(start, UInt64(document.count))), to = Int(min(end, UInt64(document.count)))
            document.withUnsafeBytes { all in
                reply(.bytes(UnsafeRawBufferPointer(rebasing: all[from..<to])))
            }
            file.served.add(to - from, ordering: .relaxed)
            return
        }
        let length = Int(end - start)
        let buffer = buffers.take(length)
        defer { buffers.give(buffer) }
        let target = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length])
        do {
            try file.read(start..<end, into: target)
        } catch {
            if case StoreError.corruptFrame(let digest, let frame, _) = error {
                counters.damagedReads.increment()
                logger.error("damaged frame: answering EIO", metadata: [
                    "digest": "\(digest)", "frame": "\(frame)", "offset": "\(start)", "length": "\(length)"])
            } else {
                counters.failedReads.increment()
                logger.error("read failed: answering EIO", metadata: ["inode": "\(inode)", "error": "\(error)"])
            }
            file.failed(EIO)
            return reply(.failed(EIO))
        }
        file.served.add(length, ordering: .relaxed)
        counters.bytesServed.increment(by: Int64(length))
        reply(.bytes(UnsafeRawBufferPointer(target)))
    }

    /// Closes a handle and records the open in the audit: who, which dataset and blob, bytes the
    /// daemon served for it, and the errno of its first failed read (0 when none failed).
    func release(handle: UInt64) {
        guard let file = open.withLock({ $0.files.removeValue(forKey: handle) }) else { return }
        record(file, note: nil)
    }

    /// At unmount: the files still open are recorded as they stand (the kernel sends no release
    /// for them once the session ends).
    public func recordOpenFiles() {
        let still = open.withLock { state in
            defer { state.files.removeAll() }
            return Array(state.files.values)
        }
        for file in still { record(file, note: "still open at unmount") }
    }

    private func record(_ file: OpenFile, note: String?) {
        var digest: String?
        if case .blob(let blob, _) = file.entry.content { digest = blob.description }
        let who = "uid \(file.requester.uid) pid \(file.requester.pid)"
        let detail = [digest == nil ? file.entry.name : nil, who, note].compactMap { $0 }.joined(separator: "; ")
        let event = AuditEvent(actor: actor, action: "mount.read", dataset: file.entry.dataset, digest: digest,
                               bytes: Int64(file.served.load(ordering: .relaxed)), status: Int(file.firstError.load(ordering: .relaxed)),
                               detail: detail)
        if audit.record(event) == nil { counters.auditDropped.increment() }
    }

    var openCount: Int { open.withLock { $0.files.count } }

    func openDirectory(_ inode: UInt64) -> OpenResult {
        let tree = self.tree
        guard let entry = visible(tree.entry(inode), in: tree) else { return .failed(ENOENT) }
        guard entry.isDirectory else { return .failed(ENOTDIR) }
        return .opened(directories.withLock { state in
            defer { state.next += 1 }
            state.open[state.next] = tree
            return state.next
        })
    }

    func directorySnapshot(_ handle: UInt64) -> MountTree? { directories.withLock { $0.open[handle] } }

    func closeDirectory(_ handle: UInt64) { _ = directories.withLock { $0.open.removeValue(forKey: handle) } }
}

/// An open file: what it reads from (a blob's reader, or the bytes of a generated document) and
/// how many bytes it has served.
final class OpenFile: @unchecked Sendable {
    // @unchecked: each reader is not thread-safe and is used only under its own lock; the rest is
    // immutable or atomic.
    let entry: MountEntry
    let requester: MountFilesystem.Requester
    let document: [UInt8]?
    private let reader: BlobReader?
    private let lock = Mutex(())
    /// A second reader, opened on the first large read, decodes the back half of large reads
    /// on another core while `reader` decodes the front half.
    private var helper: BlobReader?
    private let helperLock = Mutex(())
    private let openHelper: @Sendable () throws -> BlobReader
    let served = Atomic<Int>(0)
    /// The errno of the first read that failed, 0 while none has.
    let firstError = Atomic<Int32>(0)

    /// Reads of at least this many bytes are decoded in two halves at once.
    static let splitBytes = 256 << 10

    init(entry: MountEntry, requester: MountFilesystem.Requester, document: [UInt8]?, reader: BlobReader?,
         openHelper: @escaping @Sendable () throws -> BlobReader) {
        self.entry = entry
        self.requester = requester
        self.document = document
        self.reader = reader
        self.openHelper = openHelper
    }

    func failed(_ code: Int32) {
        _ = firstError.compareExchange(expected: 0, desired: code, ordering: .relaxed)
    }

    /// Concurrent reads of one handle take turns on each reader.
    func read(_ range: Range<UInt64>, into target: UnsafeMutableRawBufferPointer) throws {
        guard let reader else { throw StoreError.invalidArgument("no reader for an open blob") }
        let length = range.upperBound - range.lowerBound
        let middle = length < UInt64(Self.splitBytes) ? range.upperBound : lock.withLock { _ in
            reader.chunkEnd(from: range.lowerBound, minimum: length / 2, limit: range.upperBound)
        }
        if middle >= range.upperBound {
            try lock.withLock { _ in try reader.read(range, into: target) }
            return
        }
        // The halves meet at a frame boundary, so no frame is decoded twice.
        let front = Int(middle - range.lowerBound)
        let address = UInt(bitPattern: target.baseAddress)
        let failure = Mutex<(any Error)?>(nil)
        DispatchQueue.concurrentPerform(iterations: 2) { half in
            guard let base = UnsafeMutableRawPointer(bitPattern: address) else { return }
            do {
                if half == 0 {
                    try lock.withLock { _ in try self.reader?.read(range.lowerBound..<middle, into: .init(start: base, count: front)) }
                } else {
                    try helperLock.withLock { _ in
                        if helper == nil { helper = try openHelper() }
                        try helper?.read(middle..<range.upperBound, into: .init(start: base + front, count: Int(length) - front))
                    }
                }
            } catch {
                failure.withLock { $0 = $0 ?? error }
            }
        }
        if let error = failure.withLock({ $0 }) { throw error }
    }
}

struct OpenFiles {
    var files: [UInt64: OpenFile] = [:]
    private var next: UInt64 = 1

    mutating func insert(_ file: OpenFile) -> UInt64 {
        let handle = next
        next += 1
        files[handle] = file
        return handle
    }
}

/// Read buffers reused across requests: a fresh megabyte per read would be mapped and faulted in
/// each time (malloc maps large blocks directly).
final class ReadBuffers: Sendable {
    /// Free buffers as (address, size): plain numbers, so the list is Sendable.
    private let free = Mutex<[(address: UInt, count: Int)]>([])
    private static let kept = 32

    func take(_ count: Int) -> UnsafeMutableRawBufferPointer {
        if let spare = free.withLock({ $0.popLast() }), let address = UnsafeMutableRawPointer(bitPattern: spare.address) {
            let buffer = UnsafeMutableRawBufferPointer(start: address, count: spare.count)
            if buffer.count >= count { return buffer }
            buffer.deallocate()
        }
        return .allocate(byteCount: max(count, 1 << 20), alignment: 4096)
    }

    func give(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let address = buffer.baseAddress else { return }
        let spare = (address: UInt(bitPattern: address), count: buffer.count)
        let kept = free.withLock { list -> Bool in
            guard list.count < Self.kept, spare.count <= 4 << 20 else { return false }
            list.append(spare)
            return true
        }
        if !kept { buffer.deallocate() }
    }
}

/// What the mount has done, as Prometheus counters in a registry of its own (like the node's),
/// written to the metrics file for node_exporter's textfile collector.
public final class MountCounters: Sendable {
    public let registry = PrometheusCollectorRegistry()
    let opens: Counter
    let bytesServed: Counter
    /// Reads or opens answered EIO because a frame's checksum or a raw blob's digest did not match.
    let damagedReads: Counter
    let failedReads: Counter
    let failedOpens: Counter
    /// Opens refused because the audit could not record them.
    let refused: Counter
    let auditDropped: Counter
    let refreshes: Counter

    init(datasets: String) {
        let labels = [("datasets", datasets)]
        let registry = registry
        func counter(_ name: String, _ help: String) -> Counter {
            registry.makeCounter(name: "cairn_mount_" + name + "_total", labels: labels, help: help)
        }
        opens = counter("opens", "Files opened through the mount.")
        bytesServed = counter("read_bytes", "Bytes served by the daemon (page-cache hits never reach it).")
        damagedReads = counter("checksum_failures", "Reads or opens answered EIO for a damaged frame or blob.")
        failedReads = counter("read_errors", "Reads answered EIO for another reason.")
        failedOpens = counter("open_errors", "Opens answered EIO because the blob could not be opened.")
        refused = counter("audit_refusals", "Opens refused because the audit could not record them.")
        auditDropped = counter("audit_dropped", "Audit records dropped because the queue was full.")
        refreshes = counter("refreshes", "Times the view was re-read after the store changed.")
    }
}
