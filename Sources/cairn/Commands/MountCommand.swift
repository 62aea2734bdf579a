import ArgumentParser
import CPosix
import CairnAudit
import CairnMount
import CairnStore
import Foundation
import Glibc
import Logging

struct MountCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mount",
        abstract: "Serve datasets as a read-only folder of DICOM files (FUSE), for jobs that read plain files.",
        discussion: """
            Layout: MOUNTPOINT/<dataset>/index.json and MOUNTPOINT/<dataset>/<subject>/<study>/<series>/<instance>.dcm; \
            blobs that are not DICOM under MOUNTPOINT/<dataset>/files/. Every open is audited at close. Runs in the \
            background unless --foreground; stop it with SIGTERM or `fusermount3 -u MOUNTPOINT`. Exit status 2 when \
            the store, the datasets, /dev/fuse or the mountpoint cannot be used.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "An existing, empty folder to mount on.")
    var mountpoint: String

    @Option(help: ArgumentHelp("The datasets to show, comma-separated; nothing else is visible.", valueName: "ID[,ID...]"))
    var datasets: String

    @Option(help: "Who reads, as the audit records it (e.g. the job's id); default the login user.")
    var subject: String?

    @Flag(help: "Stay in the foreground (systemd, containers); logs go to stderr.")
    var foreground = false

    @Flag(help: "Let other users read (a container running as another uid); needs root or user_allow_other in /etc/fuse.conf.")
    var allowOther = false

    @Option(help: "Group (name or id) whose members may read, besides the owner; default your group. Files are 0440, folders 0550.")
    var group: String?

    @Option(help: "Worker threads serving the kernel's requests.")
    var threads = 16

    @Option(help: "Write Prometheus counters here every 5 s (node_exporter textfile collector).")
    var metricsFile: String?

    @Option(help: "In the background, where the daemon logs once it has mounted (default DATA/mount.log).")
    var logFile: String?

    @Option(help: .hidden)
    var readyFd: Int32?

    func run() throws {
        var ids: [String] = []
        for id in datasets.split(separator: ",").map({ String($0).trimmingCharacters(in: .whitespaces) }) where !id.isEmpty && !ids.contains(id) {
            ids.append(id)
        }
        guard !ids.isEmpty else { throw CommandFailure(status: 2, message: "--datasets names no dataset") }
        for id in ids {
            do { try BlobStore.validateDatasetID(id) } catch { throw CommandFailure(status: 2, message: "\(error)") }
        }
        guard (1...256).contains(threads) else { throw CommandFailure(status: 2, message: "--threads must be 1 to 256") }
        let absoluteMountpoint = URL(fileURLWithPath: mountpoint).standardizedFileURL.path
        if !foreground { return try MountDaemon.startInBackground(mountpoint: absoluteMountpoint) }
        try serve(ids, at: absoluteMountpoint)
    }

    private func serve(_ ids: [String], at path: String) throws {
        // Read buffers and pictures of the datasets come and go: give freed memory back.
        cairn_tune_malloc_for_server()
        func unusable(_ message: String) -> CommandFailure { CommandFailure(status: 2, message: message) }
        do { try Mountpoint.checkFuseDevice() } catch { throw unusable(error.description) }
        let readers = try group.map(Self.groupID)
        var logger = Logger(label: "cairn.mount")
        logger.logLevel = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) } ?? .info
        let actor = subject ?? AdminActor.current
        let store: BlobStore
        let filesystem: MountFilesystem
        do {
            store = try global.openServingStore()
            filesystem = try MountFilesystem(store: store, datasets: ids, actor: actor,
                                             audit: AuditQueue(maxPending: 100_000, boundName: "cairn mount's audit queue"),
                                             logger: logger, group: readers)
        } catch let error as StoreError {
            throw unusable(error.description)
        } catch {
            throw unusable("cannot open the store: \(error)")
        }
        do {
            if try Mountpoint.prepare(path) {
                Terminal.error("note: \(path) was left mounted by a daemon that died; detached it")
            }
        } catch { throw unusable(error.description) }
        let session = FuseSession(filesystem: filesystem, mountpoint: path)
        let start = AuditEvent(actor: actor, action: "mount.start", dataset: ids.joined(separator: ","), status: 0,
                               detail: "\(path) (\(filesystem.tree.count) entries)")
        // Fail closed: no mount without its record. Signals wait until the loop can handle them,
        // so the mount is never left behind by one arriving in between.
        do { try store.appendAudit([start]) } catch { throw unusable("cannot write the audit record of the mount: \(error)") }
        FuseSession.holdExitSignals(true)
        do {
            try session.mount(allowOther: allowOther)
        } catch {
            try? store.appendAudit([AuditEvent(actor: actor, action: "mount.stop", dataset: start.dataset, status: 2, detail: "not mounted: \(error)")])
            throw unusable(error.description)
        }
        let refresher = MountRefresher(filesystem: filesystem, session: session, metricsFile: metricsFile)
        refresher.start()
        print("cairn mount: \(ids.joined(separator: ",")) at \(path) (\(filesystem.tree.count) entries, pid \(getpid()))")
        Terminal.flushStdout()
        if let readyFd {
            MountDaemon.detachOutput(to: logFile ?? store.root + "/mount.log")
            MountDaemon.signalReady(readyFd)
        }
        FuseSession.holdExitSignals(false)
        session.serve(threads: threads)
        filesystem.recordOpenFiles()
        _ = filesystem.audit.record(AuditEvent(actor: actor, action: "mount.stop", dataset: start.dataset, status: 0, detail: path))
        refresher.stop()
        session.teardown()
        print("cairn mount: unmounted \(path)")
    }

    static func groupID(_ text: String) throws -> gid_t {
        if let id = gid_t(text) { return id }
        guard let entry = getgrnam(text) else { throw CommandFailure(status: 2, message: "no group '\(text)'") }
        return entry.pointee.gr_gid
    }
}

/// Runs `cairn mount --foreground` as a detached child and waits until it has mounted (exit 0)
/// or failed (its exit status; it printed the reason on the shared stderr).
enum MountDaemon {
    static func startInBackground(mountpoint: String) throws {
        var pipe: [Int32] = [0, 0]
        guard cairn_pipe_cloexec(&pipe) == 0 else { throw CommandFailure(status: 1, message: "cannot create a pipe: \(String(cString: strerror(errno)))") }
        let readyFd: Int32 = 3
        var arguments = Array(CommandLine.arguments.dropFirst())
        arguments += ["--foreground", "--ready-fd", String(readyFd)]
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // Both ends are close-on-exec; dup2 gives the child its own copy of the write end at 3
        // (clearing the flag), and nothing else of the parent's above it.
        posix_spawn_file_actions_adddup2(&actions, pipe[1], readyFd)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        _ = cairn_spawn_close_from(&actions, readyFd + 1)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        _ = cairn_spawn_in_new_session(&attributes)
        let executable = "/proc/self/exe"
        var argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid = pid_t()
        let spawned = posix_spawn(&pid, executable, &actions, &attributes, &argv, environ)
        close(pipe[1])
        defer { close(pipe[0]) }
        guard spawned == 0 else { throw CommandFailure(status: 1, message: "cannot start the mount daemon: \(String(cString: strerror(spawned)))") }
        var byte: UInt8 = 0
        var ready = pollfd(fd: pipe[0], events: Int16(POLLIN), revents: 0)
        // A mount waits for nothing but the index and the kernel: two minutes is a hang.
        if poll(&ready, 1, 120_000) == 0 {
            kill(pid, SIGTERM)
            throw CommandFailure(status: 1, message: "the mount daemon (pid \(pid)) did not come up within 2 minutes; stopped it")
        }
        if read(pipe[0], &byte, 1) == 1 {
            print("cairn mount: serving \(mountpoint) in the background (pid \(pid)); stop with fusermount3 -u \(mountpoint) or kill \(pid)")
            return
        }
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 1
        throw CommandFailure(status: code == 0 ? 1 : code, message: nil)
    }

    /// Sends the daemon's stdout and stderr to its log file, away from the terminal it started on.
    static func detachOutput(to path: String) {
        let log = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        guard log >= 0 else {
            Terminal.error("cannot open the log file \(path): \(String(cString: strerror(errno))); logging to /dev/null")
            let null = open("/dev/null", O_WRONLY)
            if null >= 0 { dup2(null, 1); dup2(null, 2); close(null) }
            return
        }
        dup2(log, 1)
        dup2(log, 2)
        close(log)
    }

    /// Tells the waiting parent the mount is up, then lets go of the descriptor.
    static func signalReady(_ fd: Int32) {
        var byte: UInt8 = 1
        _ = write(fd, &byte, 1)
        close(fd)
    }
}
