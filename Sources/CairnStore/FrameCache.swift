import Foundation
import Glibc
import NIOCore
import Synchronization

/// Decoded frames kept in memory, so a job's second epoch, a viewer scrolling back and two jobs
/// on one dataset are served without decoding again. Keyed by (digest, original offset): the
/// bytes are a pure function of the two, whatever codec or frame size the blob is stored in
/// today, so an entry can never go stale (a recompressed blob's frames start elsewhere and simply
/// miss). Frames enter only after their checksum passed; a hit is served as it is.
///
/// Eviction is S3-FIFO (Yang et al., SOSP 2023) in each of 16 shards: a small FIFO takes new
/// frames (10% of the bytes), a main FIFO the frames read again while in it, and a ghost list
/// remembers what the small FIFO dropped so that a frame asked for again goes straight to main.
/// A job's single pass over a dataset larger than the cache then cycles through the small FIFO
/// and leaves the working set in main alone, which LRU cannot promise. A hit only bumps a
/// two-bit counter (no list to reorder), so a shard's lock is held for a dictionary lookup; the
/// key picks the shard, so concurrent connections rarely meet on one lock.
public final class FrameCache: Sendable {
    public struct Key: Hashable, Sendable {
        public let digest: BlobDigest
        public let offset: UInt64
    }

    /// Totals since start, for `/metrics` and `cairn stats`.
    public struct Statistics: Sendable, Equatable {
        public var hits: UInt64 = 0
        public var misses: UInt64 = 0
        public var insertions: UInt64 = 0
        public var evictions: UInt64 = 0
        /// Memory the cached frames take (buffers as allocated, and bookkeeping).
        public var bytes: Int = 0
        public var frames: Int = 0
        public init() {}
    }

    /// Bytes of decoded frames held at most (0: the cache is off).
    public let capacity: Int
    private let shards: [LockedShard]
    private let uncountedHits = Atomic<UInt64>(0)

    /// Up to 16 shards of at least 32 MiB: a shard must hold many of the largest frames (1 MiB
    /// pixel strips) for its queues to mean anything.
    public init(capacity: Int) {
        let capacity = max(0, capacity)
        let count = min(16, max(1, capacity / (32 << 20)))
        self.capacity = capacity
        shards = (0..<count).map { _ in LockedShard(capacity: capacity / count) }
    }

    public var isEnabled: Bool { capacity > 0 }

    private func shard(_ key: Key) -> Int {
        // The digest is already uniform; mixing in the frame's offset spreads one blob's frames.
        var hasher = Hasher()
        hasher.combine(key)
        return Int(UInt(bitPattern: hasher.finalize()) % UInt(shards.count))
    }

    /// The frame's bytes when cached and exactly `length` long (a hit), else nil (a miss).
    /// `counted: false` leaves the hit and miss totals to the caller (`countHits`): a lookup that
    /// gives up at its first miss and lets a reader try again must not count twice.
    public func frame(_ key: Key, length: Int, counted: Bool = true) -> ByteBuffer? {
        guard isEnabled else { return nil }
        return shards[shard(key)].state.withLock { $0.lookup(key, length: length, counted: counted) }
    }

    /// Hits found by uncounted lookups.
    public func countHits(_ count: Int) { uncountedHits.add(UInt64(count), ordering: .relaxed) }

    /// Whether the frame is cached, without counting a hit or a miss or touching its counter.
    public func contains(_ key: Key, length: Int) -> Bool {
        guard isEnabled else { return false }
        return shards[shard(key)].state.withLock { $0.peek(key)?.readableBytes == length }
    }

    /// Keeps a frame whose checksum has been checked. Frames larger than a quarter of a shard
    /// are not kept: one of them would flush everything else.
    public func insert(_ key: Key, bytes: ByteBuffer) {
        guard isEnabled else { return }
        shards[shard(key)].state.withLock { $0.insert(key, bytes: bytes) }
    }

    public var statistics: Statistics {
        var total = Statistics()
        total.hits = uncountedHits.load(ordering: .relaxed)
        for shard in shards {
            let part = shard.state.withLock { $0.statistics }
            total.hits += part.hits
            total.misses += part.misses
            total.insertions += part.insertions
            total.evictions += part.evictions
            total.bytes += part.bytes
            total.frames += part.frames
        }
        return total
    }

    /// The default bound: an eighth of the memory this process may use (the machine's, or the
    /// lowest limit of its cgroup and the cgroups above it), between 64 MiB and 32 GiB.
    public static func defaultCapacity() -> Int {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), pageSize = sysconf(Int32(_SC_PAGESIZE))
        var memory = pages > 0 && pageSize > 0 ? pages * pageSize : 8 << 30
        // The process's own cgroup (a systemd unit's MemoryMax= lands there), then the root's.
        var limits = ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]
        if let groups = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8) {
            for line in groups.split(separator: "\n") where line.hasPrefix("0::/") {
                var path = String(line.dropFirst(3))
                while path.count > 1 {
                    limits.append("/sys/fs/cgroup\(path)/memory.max")
                    path = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
                }
            }
        }
        for path in limits {
            if let text = try? String(contentsOfFile: path, encoding: .utf8),
               let limit = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), limit > 0 {
                memory = min(memory, limit)
            }
        }
        return min(max(memory / 8, 64 << 20), 32 << 30)
    }
}

/// A shard behind its own lock (a class: a `Mutex` cannot be copied into an array).
private final class LockedShard: Sendable {
    let state: Mutex<Shard>
    init(capacity: Int) { state = Mutex(Shard(capacity: capacity)) }
}

/// One shard: the S3-FIFO queues over a dictionary of entries.
private struct Shard {
    struct Entry {
        var bytes: ByteBuffer
        /// Reads since insertion (or since the main queue last passed it), capped at 3.
        var frequency: UInt8
        var inMain: Bool
    }

    let capacity: Int
    var entries: [FrameCache.Key: Entry] = [:]
    var small = FIFO<FrameCache.Key>()
    var main = FIFO<FrameCache.Key>()
    /// Keys the small queue evicted, each with the sequence number of its last eviction, so a key
    /// evicted twice leaves the ghost list only with its newest record.
    var ghosts: [FrameCache.Key: UInt64] = [:]
    var ghostOrder = FIFO<(key: FrameCache.Key, sequence: UInt64)>()
    var ghostSequence: UInt64 = 0
    var smallBytes = 0
    var mainBytes = 0
    var statistics = FrameCache.Statistics()

    init(capacity: Int) { self.capacity = capacity }

    /// What an entry costs: its buffer's whole allocation (NIO rounds capacities up to a power
    /// of two) and the bookkeeping around it (dictionary slot, queue and ghost records).
    static func weight(_ bytes: ByteBuffer) -> Int { bytes.capacity + 128 }

    var smallTarget: Int { capacity / 10 }

    mutating func lookup(_ key: FrameCache.Key, length: Int, counted: Bool) -> ByteBuffer? {
        guard let index = entries.index(forKey: key), entries.values[index].bytes.readableBytes == length else {
            if counted { statistics.misses += 1 }
            return nil
        }
        if counted { statistics.hits += 1 }
        let frequency = entries.values[index].frequency
        if frequency < 3 { entries.values[index].frequency = frequency + 1 }
        return entries.values[index].bytes
    }

    func peek(_ key: FrameCache.Key) -> ByteBuffer? { entries[key]?.bytes }

    mutating func insert(_ key: FrameCache.Key, bytes: ByteBuffer) {
        let size = Self.weight(bytes)
        guard bytes.readableBytes > 0, size <= capacity / 4, entries[key] == nil else { return }
        let toMain = ghosts.removeValue(forKey: key) != nil
        entries[key] = Entry(bytes: bytes, frequency: 0, inMain: toMain)
        if toMain {
            main.push(key)
            mainBytes += size
        } else {
            small.push(key)
            smallBytes += size
        }
        statistics.insertions += 1
        statistics.frames += 1
        statistics.bytes += size
        while smallBytes + mainBytes > capacity { evict() }
    }

    /// From the small queue while it is over its tenth, but never the frame just inserted when
    /// it is the only one there (a frame larger than the tenth would otherwise never be read twice).
    private mutating func evict() {
        if (smallBytes > smallTarget && small.count > 1) || main.isEmpty {
            evictSmall()
        } else {
            evictMain()
        }
    }

    /// The small queue's oldest frame moves to main if it was read again (freeing nothing: the
    /// caller's loop evicts again), else it leaves and its key becomes a ghost.
    private mutating func evictSmall() {
        while let key = small.pop() {
            guard let entry = entries[key] else { continue }
            let size = Self.weight(entry.bytes)
            smallBytes -= size
            if entry.frequency > 0 {
                entries[key] = Entry(bytes: entry.bytes, frequency: 0, inMain: true)
                main.push(key)
                mainBytes += size
                return
            }
            remove(key, size: size)
            remember(key)
            return
        }
        evictMain()
    }

    /// The main queue's oldest frame goes round again, one read fewer, while it has reads left.
    private mutating func evictMain() {
        while let key = main.pop() {
            guard var entry = entries[key] else { continue }
            if entry.frequency > 0 {
                entry.frequency -= 1
                entries[key] = entry
                main.push(key)
                continue
            }
            let size = Self.weight(entry.bytes)
            mainBytes -= size
            remove(key, size: size)
            return
        }
    }

    private mutating func remove(_ key: FrameCache.Key, size: Int) {
        entries[key] = nil
        statistics.evictions += 1
        statistics.frames -= 1
        statistics.bytes -= size
    }

    /// Ghosts are keys only; as many are kept as frames are cached.
    private mutating func remember(_ key: FrameCache.Key) {
        ghostSequence += 1
        ghosts[key] = ghostSequence
        ghostOrder.push((key, ghostSequence))
        while ghosts.count > max(entries.count, 16), let oldest = ghostOrder.pop() {
            if ghosts[oldest.key] == oldest.sequence { ghosts[oldest.key] = nil }
        }
        // Records of keys re-evicted since are dropped as the order is walked; bound the walk's debt.
        if ghostOrder.count > 4 * max(ghosts.count, 16) { ghostOrder.compact { ghosts[$0.key] == $0.sequence } }
    }
}

/// A growable ring buffer: O(1) push and pop, no per-element allocation.
struct FIFO<Element> {
    private var storage: [Element?] = []
    private var head = 0
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    mutating func push(_ element: Element) {
        if count == storage.count { grow() }
        storage[(head + count) % storage.count] = element
        count += 1
    }

    mutating func pop() -> Element? {
        guard count > 0 else { return nil }
        let element = storage[head]
        storage[head] = nil
        head = (head + 1) % storage.count
        count -= 1
        return element
    }

    /// Keeps only the elements `keep` accepts, in order.
    mutating func compact(_ keep: (Element) -> Bool) {
        var kept = FIFO()
        while let element = pop() {
            if keep(element) { kept.push(element) }
        }
        self = kept
    }

    private mutating func grow() {
        var grown = [Element?](repeating: nil, count: max(16, storage.count * 2))
        for index in 0..<count { grown[index] = storage[(head + index) % storage.count] }
        storage = grown
        head = 0
    }
}
