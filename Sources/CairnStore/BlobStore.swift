import CairnBlobs
import CairnObjectStore
import CairnFoundation
import Foundation
import CairnIndex
import Glibc
import NIOCore

/// A Cairn data directory: content-addressed blob files under `blobs/sha256/` (or, with an S3
/// blob store, objects under the same keys in a bucket), write-in-progress files under `tmp/`, and
/// the SQLite index. Safe to share between threads and between processes.
public final class BlobStore: Sendable {
    public let root: String
    let index: StoreIndex
    /// Where blob files live; `objects` is its client when that is a bucket.
    public let blobLocation: StorageConfig.BlobLocation
    let objects: S3Client?
    /// Frame size for new blobs, kept in the index so every writer of this store agrees.
    public let frameSize: Int
    let scratchPool = ReadScratchPool()
    let seekTables = SeekTableCache()
    let writeScratchPool = WriteScratchPool()
    /// Decoded frames, shared by every reader of a serving process (off in other commands).
    public let frameCache: FrameCache
    /// Blob rows and holders for the read path (`record(_:inAnyOf:)`).
    let holdings: BlobRecordMap

    public static let defaultDataset = "default"
    static let formatVersion = "1"

    /// True when the index is a server's (PostgreSQL): every index call then waits on the network.
    public var indexIsShared: Bool { index.database.dialect == .postgres }

    var blobsRoot: String { root + "/blobs/sha256" }
    var tmpRoot: String { root + "/tmp" }
    var indexPath: String { root + "/index.sqlite" }

    private init(root: String, index: StoreIndex, frameSize: Int, blobLocation: StorageConfig.BlobLocation, objects: S3Client?,
                 readCacheBytes: Int) {
        self.root = root
        self.index = index
        frameCache = FrameCache(capacity: readCacheBytes)
        holdings = BlobRecordMap(writes: index.writes)
        self.frameSize = frameSize
        self.blobLocation = blobLocation
        self.objects = objects
    }

    /// Creates the layout and index if missing (idempotent), then opens the store. A new store
    /// with an S3 blob store creates the bucket unless it exists and claims it (`storeMarkerKey`);
    /// the location is recorded in the index. With a PostgreSQL index, the database decides
    /// whether the store exists: a second server's `init` on another host joins it.
    /// `readCacheBytes`: the decoded-frame cache of a serving process (0 in one-off commands).
    @discardableResult
    public static func initialize(at root: String, frameSize: Int = WriteOptions.defaultFrameSize,
                                  storage: StorageConfig = StorageConfig(), readCacheBytes: Int = 0) throws -> BlobStore {
        let root = absolute(root)
        let existing = try StoreIndex.existing(root: root, storage: storage)
        if let existing, try isInitialized(existing, root: root, storage: storage) {
            // Another host's init made the store (a shared index): this one lays out its own directory.
            try createDirectories(root: root)
            return try open(at: root, storage: storage, index: existing, readCacheBytes: readCacheBytes)
        }
        // An init that died after claiming the bucket left its id in the index it had begun: that
        // claim is ours, and a second run finishes it. On a shared (PostgreSQL) index the id goes
        // in first, so inits racing on several hosts all claim the bucket for the same one.
        var storeID = try existing.flatMap(pendingStoreID) ?? UUID().uuidString.lowercased()
        if let existing, case .postgres = storage.index {
            storeID = try existing.write { db in
                try db.execute(sql: "INSERT INTO settings(key, value) VALUES ('store_id', ?) ON CONFLICT DO NOTHING", arguments: [storeID])
                return try String.fetchOne(db, sql: "SELECT value FROM settings WHERE key = 'store_id'") ?? storeID
            }
        }
        // The bucket first: a node that cannot reach, authenticate to or claim it creates nothing here.
        let client = try storage.objectClient()
        if let client {
            do {
                try client.createBucketIfMissing()
                if let marker = try client.getSmall(storeMarkerKey), marker != Array(storeID.utf8) {
                    throw StoreError.invalidArgument(
                        "bucket \(storage.blobs) already holds Cairn store \(String(decoding: marker, as: UTF8.self)); one bucket per store (gc would take the other's blobs for orphans)")
                }
            } catch let error as ObjectStoreError {
                throw StoreError.objectStore(error)
            }
        }
        try createDirectories(root: root)
        let index = try existing ?? StoreIndex(path: root + "/index.sqlite")
        try index.write { db in
            try db.execute(sql: "INSERT INTO settings(key, value) VALUES ('store_id', ?) ON CONFLICT DO NOTHING", arguments: [storeID])
            try db.execute(sql: "INSERT INTO settings(key, value) VALUES ('blob_store', ?) ON CONFLICT DO NOTHING",
                           arguments: [storage.blobs.description])
        }
        if let client {
            do { try client.put(storeMarkerKey, bytes: Array(storeID.utf8)) } catch { throw StoreError.objectStore(error) }
        }
        if storage.sharesFileBlobs { try writeBlobsMarker(root: root, storeID: storeID) }
        // Last: the store counts as initialised (`isInitialized`) from here on.
        try index.write { db in
            try db.execute(sql: "INSERT INTO settings(key, value) VALUES ('frame_size', ?) ON CONFLICT DO NOTHING",
                           arguments: [String(frameSize)])
            try db.execute(sql: "INSERT INTO datasets(id, title, created_at) VALUES (?, 'Default dataset', ?) ON CONFLICT DO NOTHING",
                           arguments: [defaultDataset, Date().timeIntervalSince1970])
            try db.execute(sql: "INSERT INTO settings(key, value) VALUES ('format_version', ?) ON CONFLICT DO NOTHING",
                           arguments: [formatVersion])
        }
        return try open(at: root, storage: storage, index: index, readCacheBytes: readCacheBytes)
    }

    /// The object that names the store a bucket belongs to (its `store_id`).
    static let storeMarkerKey = "cairn-store-id"

    /// The store id an unfinished `initialize` recorded, if any.
    private static func pendingStoreID(_ index: StoreIndex) throws -> String? {
        try index.read { db in try String.fetchOne(db, sql: "SELECT value FROM settings WHERE key = 'store_id'") }
    }

    /// True when `initialize` finished (and, for a SQLite index, the data directory has its blobs;
    /// a shared index's store exists before this host's directory does).
    private static func isInitialized(_ index: StoreIndex, root: String, storage: StorageConfig) throws -> Bool {
        if storage.index == .sqlite, !FileSystem.exists(root + "/blobs/sha256") { return false }
        return try index.read { db in
            try Bool.fetchOne(db, sql: "SELECT 1 FROM settings WHERE key = 'format_version'") ?? false
        }
    }

    /// Opens an initialised store and recovers from any crashed writer (see `recoverTemporaryFiles`).
    /// `storage` must name the blob store the index was initialised with: a node pointed at the
    /// wrong place would report every blob missing, or write where no reader looks.
    public static func open(at root: String, storage: StorageConfig = StorageConfig(), readCacheBytes: Int = 0) throws -> BlobStore {
        let root = absolute(root)
        // The data directory must have been laid out by `init` here, whatever the index: a mistyped
        // --data must not become a new directory.
        guard FileSystem.exists(root + "/blobs/sha256"), let index = try StoreIndex.existing(root: root, storage: storage),
              try isInitialized(index, root: root, storage: storage) else {
            throw StoreError.notInitialized(path: storage.index == .sqlite ? root : "\(root) (index \(storage.index))")
        }
        return try open(at: root, storage: storage, index: index, readCacheBytes: readCacheBytes)
    }

    private static func open(at root: String, storage: StorageConfig, index: StoreIndex, readCacheBytes: Int) throws -> BlobStore {
        try createDirectories(root: root)
        // One read for every setting opening needs (each read is a transaction: round trips to a server).
        let settings = try index.read { db in
            Dictionary(try IndexRow.fetchAll(db, sql: "SELECT key, value FROM settings WHERE key IN ('frame_size', 'blob_store', 'store_id')")
                .map { (try $0["key"] as String, try $0["value"] as String) }, uniquingKeysWith: { first, _ in first })
        }
        let frameSize = settings["frame_size"].flatMap { Int($0) } ?? WriteOptions.defaultFrameSize
        let recorded = settings["blob_store"] ?? StorageConfig.BlobLocation.files.description
        let storeID = settings["store_id"]
        guard recorded == storage.blobs.description else {
            throw StoreError.invalidArgument(
                "the store at \(root) keeps its blobs in \(recorded), but the configuration says \(storage.blobs) (pass --config or set $CAIRN_CONFIG to the file that names \(recorded))")
        }
        if storage.sharesFileBlobs {
            // With a shared index, every server must see one blobs/ (CephFS): a directory of this
            // host's own would hold none of the others' blobs, and its verify would mark theirs missing.
            let marker = try? String(contentsOfFile: root + "/blobs/" + storeMarkerKey, encoding: .utf8)
            guard let storeID, marker == storeID else {
                throw StoreError.invalidArgument(
                    "\(root)/blobs does not hold the blobs of the store in \(storage.index) (no \(storeMarkerKey) naming it): with a shared index and blob_store `file`, blobs/ must be one directory every server mounts (CephFS), or use blob_store s3://")
            }
        }
        let objects = try storage.objectClient()
        if let objects {
            // The bucket must still be this store's: another store's gc would take our blobs for orphans.
            let marker: [UInt8]?
            do { marker = try objects.getSmall(storeMarkerKey) } catch { throw StoreError.objectStore(error) }
            guard let storeID, marker == Array(storeID.utf8) else {
                throw StoreError.invalidArgument(
                    "bucket \(storage.blobs) does not belong to the store at \(root) (its \(storeMarkerKey) is \(marker.map { String(decoding: $0, as: UTF8.self) } ?? "missing"), the index's store_id \(storeID ?? "missing"))")
            }
        }
        let store = BlobStore(root: root, index: index, frameSize: frameSize, blobLocation: storage.blobs, objects: objects,
                              readCacheBytes: readCacheBytes)
        try store.recoverTemporaryFiles()
        return store
    }

    /// `blobs/cairn-store-id`: which store's blobs a shared-index store's blobs/ holds.
    private static func writeBlobsMarker(root: String, storeID: String) throws {
        let path = root + "/blobs/" + storeMarkerKey
        if (try? String(contentsOfFile: path, encoding: .utf8)) == storeID { return }
        do { try Data(storeID.utf8).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw StoreError.io(op: "write", path: path, errno: EIO)
        }
        try FileSystem.fsyncDirectory(root + "/blobs")
    }

    private static func createDirectories(root: String) throws {
        for path in [root, root + "/blobs", root + "/blobs/sha256", root + "/tmp"] {
            try FileSystem.makeDirectory(path)
        }
    }

    private static func absolute(_ path: String) -> String {
        let url = URL(fileURLWithPath: path)
        return url.standardizedFileURL.path
    }

    /// Where a blob's file lives: `blobs/sha256/<hex[0:2]>/<hex[2:4]>/<hex>`.
    public func path(of digest: BlobDigest) -> String {
        let hex = digest.hex
        return "\(blobsRoot)/\(hex.prefix(2))/\(hex.dropFirst(2).prefix(2))/\(hex)"
    }

    /// The blob's key in the bucket: its path under the data directory (`blobs/sha256/<hex[0:2]>/<hex[2:4]>/<hex>`).
    static func objectKey(of digest: BlobDigest) -> String {
        let hex = digest.hex
        return "blobs/sha256/\(hex.prefix(2))/\(hex.dropFirst(2).prefix(2))/\(hex)"
    }

    /// The digest a blob file's path or object key names (its last component), if it names one.
    static func digest(named path: String) -> BlobDigest? {
        BlobDigest(hex: String(path.split(separator: "/").last ?? ""))
    }

    /// Where the blob's stored bytes are: its file's path, or `s3://BUCKET/KEY`.
    public func location(of digest: BlobDigest) -> String {
        guard let objects else { return path(of: digest) }
        return "s3://\(objects.bucket)/\(Self.objectKey(of: digest))"
    }

    func directory(of digest: BlobDigest) -> String {
        let hex = digest.hex
        return "\(blobsRoot)/\(hex.prefix(2))/\(hex.dropFirst(2).prefix(2))"
    }

    // MARK: - Reading

    public func record(_ digest: BlobDigest) throws -> BlobRecord? {
        try index.readStatement { db in try StoreIndex.blob(db, digest) }
    }

    /// Opens a reader for an indexed blob.
    public func reader(_ digest: BlobDigest) throws -> BlobReader {
        guard let record = try record(digest) else { throw StoreError.notFound(digest) }
        return try reader(for: record)
    }

    /// A reader over the blob's file or object. An object's size comes from its row (no HEAD);
    /// a file's from fstat. `shared` readers borrow the store's scratch and seek-table cache.
    func makeReader(_ digest: BlobDigest, codec: BlobCodec, storedSize: UInt64?, shared: Bool = true) throws -> BlobReader {
        guard let objects else {
            return try BlobReader(path: path(of: digest), digest: digest, codec: codec,
                                  pool: shared ? scratchPool : nil, tables: shared ? seekTables : nil, frames: shared ? frameCache : nil)
        }
        guard let size = try storedSize ?? record(digest)?.storedSize else { throw StoreError.notFound(digest) }
        let source = ObjectBlobSource(client: objects, key: Self.objectKey(of: digest), digest: digest, size: size)
        // Objects under a digest's key are replaced only by a writer that found no row, so the
        // stored size tells tables apart.
        return try BlobReader(source: source, identity: 0, fileSize: size, digest: digest, codec: codec,
                              pool: shared ? scratchPool : nil, tables: shared ? seekTables : nil, frames: shared ? frameCache : nil)
    }

    /// The blob's row and the first of `datasets` (in the order given) that holds it, or nil when
    /// none does: a blob shared by two datasets is reachable through either. Answered from memory
    /// (`BlobRecordMap`): this runs on every blob request.
    public func record(_ digest: BlobDigest, inAnyOf datasets: [String]) throws -> (record: BlobRecord, dataset: String)? {
        if datasets.isEmpty { return nil }
        let holding = try holdings.holding(digest, generations: { try contentGenerations() }) {
            // One statement (atomic on its own, no transaction).
            try index.readStatement { db in
                let rows = try IndexRow.fetchAll(db.cachedStatement(sql: """
                    SELECT b.*, d.dataset_id FROM dataset_blobs d JOIN blobs b ON b.digest = d.digest WHERE d.digest = ?
                    """), arguments: [digest.hex])
                guard let row = rows.first else { return nil }
                return BlobRecordMap.Holding(record: try BlobRecord(row: row), datasets: try rows.map { try $0["dataset_id"] as String })
            }
        }
        guard let holding, let dataset = datasets.first(where: holding.datasets.contains) else { return nil }
        return (holding.record, dataset)
    }

    /// As `record(_:inAnyOf:)`, from memory only: nil when the row is not in the map or the map is
    /// due a recheck. For callers that must not wait on the index (an event loop).
    public func cachedRecord(_ digest: BlobDigest, inAnyOf datasets: [String]) -> (record: BlobRecord, dataset: String)? {
        guard let holding = holdings.cachedHolding(digest), let dataset = datasets.first(where: holding.datasets.contains) else {
            return nil
        }
        return (holding.record, dataset)
    }

    /// The original bytes `range` of a compressed blob as slices of cached decoded frames, when
    /// every frame it touches is cached and the blob's seek table is at hand; nil otherwise (the
    /// caller opens a reader, which decodes what is missing). Nothing is read from disk.
    public func cachedFrames(of record: BlobRecord, range: Range<UInt64>) -> [ByteBuffer]? {
        guard frameCache.isEnabled, record.codec != .raw, !range.isEmpty, range.upperBound <= record.size,
              let table = seekTables.peek(record.digest, fileSize: record.storedSize),
              table.decompressedSize == record.size else { return nil }
        let first = table.frameIndex(containing: range.lowerBound), last = table.frameIndex(containing: range.upperBound - 1)
        var slices: [ByteBuffer] = []
        slices.reserveCapacity(last - first + 1)
        for frame in first...last {
            let start = table.decompressedOffsets[frame], end = table.decompressedOffsets[frame + 1]
            guard let bytes = frameCache.frame(FrameCache.Key(digest: record.digest, offset: start), length: Int(end - start),
                                               counted: false) else { return nil }
            let from = Int(max(start, range.lowerBound) - start), to = Int(min(end, range.upperBound) - start)
            guard let slice = bytes.getSlice(at: bytes.readerIndex + from, length: to - from) else { return nil }
            slices.append(slice)
        }
        frameCache.countHits(slices.count)
        return slices
    }

    /// Opens a reader for a blob whose codec the caller already knows (saves the index lookup for files).
    public func reader(_ digest: BlobDigest, codec: BlobCodec) throws -> BlobReader {
        try makeReader(digest, codec: codec, storedSize: nil)
    }

    /// Opens a reader for a blob whose row the caller already has (saves the index lookup).
    public func reader(for record: BlobRecord) throws -> BlobReader {
        try makeReader(record.digest, codec: record.codec, storedSize: record.storedSize)
    }

    /// Free bytes on the data directory's filesystem.
    public var freeBytes: UInt64? { FileSystem.freeBytes(root) }

    /// A cheap end-to-end check that the index answers and `tmp/` is writable (for readiness probes).
    public func checkUsable() throws {
        _ = try index.readStatement { db in try Int.fetchOne(db, sql: "SELECT 1") }
        let probe = SpoolFile.path(in: tmpRoot, token: "probe")
        _ = try SpoolFile(path: probe)
    }

    /// A new spool file under `tmp/` for bytes arriving from outside (uploads) before they are staged.
    public func makeSpool() throws -> SpoolFile {
        try SpoolFile(path: SpoolFile.path(in: tmpRoot, token: String(UInt64.random(in: 0...UInt64.max), radix: 16)))
    }

    // MARK: - Recovery

    /// Temp files are named `<random>.partial` while being written and `<hex>.<random>.ready` once
    /// complete and fsynced, and are removed only after the index commit. A live writer holds an
    /// flock on its temp file; an unlocked one belongs to a dead process. For a `.ready` file whose
    /// blob was linked but never committed, the blob file (same inode) is removed as well, so the
    /// store holds exactly what was reported — without walking the whole blob tree at start-up.
    func recoverTemporaryFiles() throws {
        for name in try FileSystem.list(tmpRoot) {
            let path = tmpRoot + "/" + name
            guard let file = try? PosixFile.openForReading(path) else { continue }
            guard file.tryLockExclusive() else { continue }
            if name.hasSuffix(".ready"), let digest = BlobDigest(hex: String(name.prefix(64))) {
                try discardUncommitted(digest, tempPath: path)
            }
            FileSystem.remove(path)
        }
    }

    /// Removes the blob file that the temp file `tempPath` was linked to, if no index row claims
    /// it. Runs inside a write transaction so it is ordered with writers' commits.
    func discardUncommitted(_ digest: BlobDigest, tempPath: String) throws {
        let blobPath = path(of: digest)
        let removeIfOurs = { (db: any IndexConnection) throws in
            if try StoreIndex.blob(db, digest) == nil, FileSystem.sameFile(blobPath, tempPath) {
                FileSystem.remove(blobPath)
            }
        }
        do {
            try index.write(removeIfOurs)
        } catch {
            // A full disk can refuse even an empty write transaction; a read still orders us after commits.
            try index.read(removeIfOurs)
        }
    }

    // MARK: - Datasets

    public func datasetExists(_ id: String) throws -> Bool {
        try index.read { db in try Bool.fetchOne(db, sql: "SELECT 1 FROM datasets WHERE id = ?", arguments: [id]) ?? false }
    }

    /// Dataset ids are used in URLs and file names: letters, digits, `.`, `_`, `-`; 1–128 characters.
    public static func validateDatasetID(_ id: String) throws { try validateIdentifier(id, what: "dataset id") }

    /// Node and dataset ids appear in URLs, file names and signed documents.
    static func validateIdentifier(_ id: String, what: String) throws {
        guard Identifier.isValid(id) else {
            throw StoreError.invalidArgument("\(what) '\(id)' must be 1-128 of A-Z a-z 0-9 . _ - and not start with . or -")
        }
    }
}
