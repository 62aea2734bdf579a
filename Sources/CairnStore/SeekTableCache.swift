import CairnBlobs
import Glibc
import Synchronization

/// Parsed seek tables shared by every reader of a blob. A 2 GiB blob at 64 KiB frames has a
/// 32,768-entry table (~1 MB parsed): read and parsed per open, 200 concurrent readers held
/// 200 copies, and each ranged read paid the table's pread. Entries are checked against the
/// file's inode and size at every open, so a blob re-encoded in another codec is re-read.
final class SeekTableCache: Sendable {
    private struct Entry {
        var inode: UInt64
        var fileSize: UInt64
        var table: SeekTable
        var lastUse: UInt64
    }

    private struct State {
        var entries: [BlobDigest: Entry] = [:]
        var frames = 0
        var clock: UInt64 = 0
    }

    private let state = Mutex(State())
    /// Upper bound on cached frame entries (~28 bytes each parsed): ~4M frames, ~110 MB at most.
    private let frameLimit: Int

    init(frameLimit: Int = 4 << 20) { self.frameLimit = frameLimit }

    /// Misses are loaded one at a time: 200 clients opening the same large blob at once would
    /// otherwise each read and parse its table, and glibc keeps that transient peak resident.
    private let loading = Mutex(())

    func table(for digest: BlobDigest, inode: UInt64, fileSize: UInt64, load: () throws -> SeekTable) throws -> SeekTable {
        if let table = cached(digest, inode: inode, fileSize: fileSize) { return table }
        return try loading.withLock { _ in
            if let table = cached(digest, inode: inode, fileSize: fileSize) { return table }
            let table = try load()
            insert(table, for: digest, inode: inode, fileSize: fileSize)
            return table
        }
    }

    /// The table of a blob whose stored size is `fileSize`, if one is cached, without opening
    /// the file (its inode is not known here). A table of an older encoding of the same size
    /// only names other frame boundaries; frame-cache keys are original offsets, so the worst it
    /// causes is a miss.
    func peek(_ digest: BlobDigest, fileSize: UInt64) -> SeekTable? {
        state.withLock { state in
            guard let entry = state.entries[digest], entry.fileSize == fileSize else { return nil }
            return entry.table
        }
    }

    private func cached(_ digest: BlobDigest, inode: UInt64, fileSize: UInt64) -> SeekTable? {
        state.withLock { state in
            guard var entry = state.entries[digest], entry.inode == inode, entry.fileSize == fileSize else { return nil }
            state.clock += 1
            entry.lastUse = state.clock
            state.entries[digest] = entry
            return entry.table
        }
    }

    private func insert(_ table: SeekTable, for digest: BlobDigest, inode: UInt64, fileSize: UInt64) {
        guard table.frameCount <= frameLimit else { return }
        state.withLock { state in
            state.clock += 1
            if let old = state.entries.updateValue(Entry(inode: inode, fileSize: fileSize, table: table, lastUse: state.clock),
                                                   forKey: digest) {
                state.frames -= old.table.frameCount
            }
            state.frames += table.frameCount
            // Evict the least recently used half when over the limit: rare, and cheaper than a list.
            if state.frames > frameLimit {
                let byAge = state.entries.sorted { $0.value.lastUse < $1.value.lastUse }
                for (key, entry) in byAge.prefix(byAge.count / 2 + 1) where key != digest {
                    state.entries[key] = nil
                    state.frames -= entry.table.frameCount
                }
            }
        }
    }
}
