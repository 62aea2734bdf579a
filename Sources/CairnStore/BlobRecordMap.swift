import Synchronization

/// Blob rows and the datasets holding them, kept in memory for the read path: a SQLite read
/// transaction (a POSIX lock on the shared-memory file, and GRDB's row decoding) on every range
/// request cost more than serving a cached frame. The map is kept in step with the index through
/// the datasets' content generations (triggers move them whenever a dataset gains or loses a
/// blob, or one of its blobs is stored again or marked damaged): every write through this
/// process's index makes the next lookup re-read them, and other processes' writes (`cairn
/// erase`, `ingest`, `recompress`) are seen by every lookup that starts `recheckInterval` after
/// they commit. A changed generation empties the map; it refills one lookup at a time.
final class BlobRecordMap: Sendable {
    struct Holding: Sendable {
        var record: BlobRecord
        /// The datasets that hold the blob.
        var datasets: [String]
    }

    private struct State {
        var holdings: [BlobDigest: Holding] = [:]
        /// Moves on whenever the map is emptied, so a lookup that read the index before a change
        /// does not store what it read after the map learned of the change.
        var epoch: UInt64 = 0
        var generations: [String: Int64]?
        var checkedAt: ContinuousClock.Instant?
        var writesSeen: UInt64 = 0
    }

    private let state = Mutex(State())
    /// One generation check at a time; lookups that arrive meanwhile wait for its answer.
    private let checking = Mutex(())
    private let writes: IndexWriteCounter
    let limit: Int
    static let recheckInterval = Duration.milliseconds(50)

    init(writes: IndexWriteCounter, limit: Int = 1 << 18) {
        self.writes = writes
        self.limit = limit
    }

    /// The blob's holding as of at most `recheckInterval` ago (this process's own writes: now).
    /// `generations` reads every dataset's content generation; `load` the blob's row and holders.
    func holding(_ digest: BlobDigest, generations: () throws -> [String: Int64],
                 load: () throws -> Holding?) throws -> Holding? {
        try refreshIfDue(generations)
        let (cached, epoch) = state.withLock { ($0.holdings[digest], $0.epoch) }
        if let cached { return cached }
        guard let loaded = try load() else { return nil }
        state.withLock { state in
            guard state.epoch == epoch else { return }
            if state.holdings.count >= limit { state.holdings.removeAll(keepingCapacity: true) }
            state.holdings[digest] = loaded
        }
        return loaded
    }

    /// The holding when the map has it and needs no recheck now; nil otherwise. Never touches the
    /// index, so it may run where waiting is not allowed (an event loop).
    func cachedHolding(_ digest: BlobDigest) -> Holding? {
        guard isFresh(now: ContinuousClock.now, writes: writes.value) else { return nil }
        return state.withLock { $0.holdings[digest] }
    }

    private func refreshIfDue(_ generations: () throws -> [String: Int64]) throws {
        let now = ContinuousClock.now
        let writesNow = writes.value
        if isFresh(now: now, writes: writesNow) { return }
        try checking.withLock { _ in
            if isFresh(now: now, writes: writesNow) { return }
            let current = try generations()
            state.withLock { state in
                if state.generations != current {
                    state.holdings.removeAll(keepingCapacity: true)
                    state.epoch += 1
                    state.generations = current
                }
                state.checkedAt = now
                state.writesSeen = writesNow
            }
        }
    }

    private func isFresh(now: ContinuousClock.Instant, writes: UInt64) -> Bool {
        state.withLock { state in
            guard let checkedAt = state.checkedAt, state.writesSeen == writes else { return false }
            return now - checkedAt < Self.recheckInterval && checkedAt <= now
        }
    }
}

/// Counts write transactions committed through one `StoreIndex`, so in-memory views of the
/// index (`BlobRecordMap`) know to look again at once after this process changed it.
final class IndexWriteCounter: Sendable {
    private let count = Atomic<UInt64>(0)
    var value: UInt64 { count.load(ordering: .acquiring) }
    func increment() { count.add(1, ordering: .releasing) }
}
