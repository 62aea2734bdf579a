import CairnStore
import Foundation
import Glibc
import Logging
import Synchronization

/// The mount's housekeeping threads. One follows the store (a new picture when a mounted
/// dataset's content generation moves, and the kernel told what went away), writes pending audit
/// records and rewrites the metrics file. The other hides erased subjects at once, so consent
/// withdrawn does not wait for a re-read of a big dataset (about a second at 100,000 instances).
public final class MountRefresher: Sendable {
    private let filesystem: MountFilesystem
    private let session: FuseSession
    private let interval: Duration
    private let metricsFile: String?
    private let stopping = Atomic<Bool>(false)
    private let threads = Mutex<[pthread_t]>([])

    public init(filesystem: MountFilesystem, session: FuseSession, interval: Duration = .milliseconds(200), metricsFile: String?) {
        self.filesystem = filesystem
        self.session = session
        self.interval = interval
        self.metricsFile = metricsFile
    }

    /// Starts the threads. Call with the exit signals held (`FuseSession.holdExitSignals`), so no
    /// thread takes one meant for the session loop.
    public func start() {
        let lastErasure = (try? filesystem.store.latestErasure()) ?? 0
        spawn { $0.loop() }
        spawn { $0.watchErasures(after: lastErasure) }
    }

    private func spawn(_ body: @escaping @Sendable (MountRefresher) -> Void) {
        final class Job: Sendable {
            let refresher: MountRefresher
            let body: @Sendable (MountRefresher) -> Void
            init(_ refresher: MountRefresher, _ body: @escaping @Sendable (MountRefresher) -> Void) {
                self.refresher = refresher
                self.body = body
            }
        }
        var created = pthread_t()
        let context = Unmanaged.passRetained(Job(self, body)).toOpaque()
        let status = pthread_create(&created, nil, { context in
            guard let context else { return nil }
            let job = Unmanaged<Job>.fromOpaque(context).takeRetainedValue()
            job.body(job.refresher)
            return nil
        }, context)
        if status == 0 {
            threads.withLock { $0.append(created) }
        } else {
            Unmanaged<Job>.fromOpaque(context).release()
            filesystem.logger.error("cannot start a housekeeping thread; the view will not follow the store", metadata: ["errno": "\(status)"])
        }
    }

    /// Stops the threads after the last audit write.
    public func stop() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        for running in threads.withLock({ $0 }) { pthread_join(running, nil) }
    }

    private func pause(_ length: Duration) {
        let (seconds, attoseconds) = length.components
        var pause = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
        nanosleep(&pause, nil)
    }

    private func watchErasures(after first: Int64) {
        var last = first
        while !stopping.load(ordering: .sequentiallyConsistent) {
            hideErasures(after: &last)
            pause(.milliseconds(100))
        }
    }

    private func loop() {
        if !session.widenReadahead(kibibytes: 1024) {
            filesystem.logger.info("readahead stays at the kernel's default (setting it needs root)")
        }
        var lastMetrics = ContinuousClock.now - .seconds(60)
        var nextRead = ContinuousClock.now
        while !stopping.load(ordering: .sequentiallyConsistent) {
            // A re-read of a big dataset is paced by its own length: at most half the time re-reading.
            if ContinuousClock.now >= nextRead {
                let spent = refreshIfChanged()
                nextRead = ContinuousClock.now + spent
            }
            flushAudit()
            if ContinuousClock.now - lastMetrics >= .seconds(5) {
                writeMetrics()
                lastMetrics = .now
            }
            pause(interval)
        }
        flushAudit()
        writeMetrics()
    }

    /// Re-reads the datasets when one of them changed, installs the new picture, and invalidates
    /// in the kernel every name that went away and every inode whose attributes changed. When the
    /// store cannot be read, the mount shows nothing until it can (it cannot tell what was erased).
    /// Returns how long a re-read took, so the caller can pace them.
    @discardableResult
    public func refreshIfChanged() -> Duration {
        let store = filesystem.store
        let old = filesystem.tree
        let started = ContinuousClock.now
        do {
            guard try store.contentGenerations(of: filesystem.datasets) != old.generations else { return .zero }
            let new = try MountFilesystem.readTree(store: store, datasets: filesystem.datasets)
            _ = filesystem.replaceTree(new, readStarted: started)
            filesystem.counters.refreshes.increment()
            invalidate(from: old, to: new, reading: ContinuousClock.now - started)
        } catch {
            filesystem.logger.error("cannot read the datasets: showing nothing until they can be read", metadata: ["error": "\(error)"])
            if old.count > MountTree.empty.count {
                _ = filesystem.replaceTree(.empty, readStarted: started)
                invalidate(from: old, to: .empty, reading: ContinuousClock.now - started)
            }
        }
        return ContinuousClock.now - started
    }

    /// Consent withdrawn: an erased subject's folder goes at once, ahead of the re-read that
    /// follows (which, for a big dataset, takes about a second).
    private func hideErasures(after last: inout Int64) {
        do {
            let (erased, newest) = try filesystem.store.erasures(after: last, in: filesystem.datasets)
            last = newest
            for (dataset, subject) in erased {
                let gone = filesystem.hide(subject: subject, in: dataset)
                guard let folder = gone.first else { continue }
                session.invalidate(entry: folder.name, in: folder.parent)
                for entry in gone { session.invalidate(inode: entry.inode) }
                filesystem.logger.info("erased subject hidden", metadata: ["dataset": "\(dataset)", "entries": "\(gone.count)"])
            }
        } catch {
            filesystem.logger.error("cannot read erasures; the re-read will show them", metadata: ["error": "\(error)"])
        }
    }

    private func invalidate(from old: MountTree, to new: MountTree, reading: Duration) {
        let started = ContinuousClock.now
        var removed = 0
        for before in old.allEntries {
            guard let after = new.entry(before.inode) else {
                session.invalidate(entry: before.name, in: before.parent)
                session.invalidate(inode: before.inode)
                removed += 1
                continue
            }
            if after == before { continue }
            if after.parent != before.parent || after.name != before.name || after.content != before.content {
                session.invalidate(entry: before.name, in: before.parent)
            }
            session.invalidate(inode: before.inode)
        }
        filesystem.logger.info("view follows the store", metadata: [
            "entries": "\(new.count)", "removed": "\(removed)", "read_seconds": "\(reading)",
            "invalidate_seconds": "\(ContinuousClock.now - started)"])
    }

    private func flushAudit() {
        do {
            try filesystem.audit.flush { try filesystem.store.appendAudit($0) }
        } catch {
            filesystem.logger.error("audit records not written; opens are refused until they are", metadata: ["error": "\(error)"])
        }
    }

    private func writeMetrics() {
        guard let metricsFile else { return }
        let text = filesystem.counters.registry.emitToString()
        let temporary = metricsFile + ".tmp"
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: temporary))
            guard rename(temporary, metricsFile) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        } catch {
            filesystem.logger.warning("cannot write the metrics file", metadata: ["path": "\(metricsFile)", "error": "\(error)"])
        }
    }
}
