import CairnAudit
import CairnFoundation
import CairnIndex
import CairnManifest
import Crypto
import Foundation
import GRDB
import GRDBSQLite
import Synchronization

/// Why the hub refused a pushed snapshot (the reason goes back to the node and into `rejections`).
public enum IntakeError: Error, CustomStringConvertible, Equatable {
    case unenrolled(String)
    case malformed(String)
    case digestMismatch(claimed: String, actual: String)
    case wrongPath(String)
    case badSignature
    /// The snapshot does not follow the hub's head; the node resends from `head`.
    case outOfOrder(seq: Int64, head: Int64?, headDigest: String?)
    case rootMismatch(claimed: String, computed: String)
    case unknownRemoval(String)

    public var description: String {
        switch self {
        case .unenrolled(let node): "node \(node) is not enrolled at this hub"
        case .malformed(let reason): "not a valid snapshot: \(reason)"
        case .digestMismatch(let claimed, let actual): "body hashes to \(actual), not \(claimed)"
        case .wrongPath(let reason): reason
        case .badSignature: "signature does not verify against the node's enrolled key"
        case .outOfOrder(let seq, let head, _):
            "snapshot seq \(seq) does not follow the hub's head (\(head.map { "seq \($0)" } ?? "none"))"
        case .rootMismatch(let claimed, let computed):
            "entries root after applying the delta is \(computed), the snapshot claims \(claimed)"
        case .unknownRemoval(let digest): "delta removes \(digest), which the hub's copy does not hold"
        }
    }
}

public enum IntakeOutcome: Equatable, Sendable {
    case applied
    /// The hub's head already is this snapshot (a repeated push).
    case alreadyHead
}

extension HubIndex {
    /// Verifies and applies one pushed snapshot: enrolled node, digest of the body, path, signature,
    /// parent chain and seq, then the delta applied to the hub's copy and the entries root
    /// recomputed over it. All in one write transaction: refused means nothing applied.
    /// Refusals are recorded (rejections table, audit chain) only once the signature has verified:
    /// what a sender that has not proven to be the node sends costs no disk (it is logged instead).
    public func intake(node: String, dataset: String, claimedDigest: String, body: [UInt8]) throws -> IntakeOutcome {
        var signed = false
        do {
            return try intakeChecked(node: node, dataset: dataset, claimedDigest: claimedDigest, body: body, signed: &signed)
        } catch let error as IntakeError {
            if signed { reject(node: node, dataset: dataset, digest: claimedDigest, reason: error.description) }
            throw error
        }
    }

    private func intakeChecked(node: String, dataset: String, claimedDigest: String, body: [UInt8],
                               signed: inout Bool) throws -> IntakeOutcome {
        guard let keyText = try publicKey(of: node) else { throw IntakeError.unenrolled(node) }
        let snapshot: ReceivedSnapshot
        do { snapshot = try ReceivedSnapshot(canonical: body) } catch { throw IntakeError.malformed("\(error)") }
        guard snapshot.digest == claimedDigest else { throw IntakeError.digestMismatch(claimed: claimedDigest, actual: snapshot.digest) }
        guard snapshot.node == node, snapshot.dataset == dataset else {
            throw IntakeError.wrongPath("snapshot is for \(snapshot.node)/\(snapshot.dataset), pushed to \(node)/\(dataset)")
        }
        guard let raw = Base64URL.decode(keyText), let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) else {
            throw IntakeError.badSignature
        }
        // The signature (SHA-512 over the whole document) and taking the entries apart (a leaf hash
        // each, in slices) are independent: all cores at once. Only the apply below holds the writer.
        let slices = 8
        let signatureValid = Mutex(false)
        let taken = Mutex<[Int: Result<EntryDelta, any Error>]>([:])
        DispatchQueue.concurrentPerform(iterations: slices + 1) { part in
            if part == 0 {
                let valid = snapshot.signatureIsValid(for: key)
                signatureValid.withLock { $0 = valid }
            } else {
                let result = Result { try EntryDelta(snapshot, slice: part - 1, of: slices) }
                taken.withLock { $0[part - 1] = result }
            }
        }
        guard signatureValid.withLock({ $0 }) else { throw IntakeError.badSignature }
        signed = true
        let delta: EntryDelta
        do {
            let parts = try taken.withLock { results in
                try (0..<slices).map { slice -> EntryDelta in
                    guard let result = results[slice] else { throw IntakeError.malformed("entry slice \(slice) was not taken apart") }
                    return try result.get()
                }
            }
            delta = try EntryDelta(joining: parts, removed: snapshot.removed)
        } catch let error as IntakeError {
            throw error
        } catch {
            throw IntakeError.malformed("\(error)")
        }
        let change = try write({ db -> AppliedChange? in
            let head = try Row.fetchOne(db, sql: "SELECT seq, digest FROM heads WHERE node = ? AND dataset = ?",
                                        arguments: [node, dataset]).map { (seq: $0["seq"] as Int64, digest: $0["digest"] as String) }
            if head?.digest == snapshot.digest { return nil }
            guard snapshot.seq == (head?.seq ?? 0) + 1, snapshot.parent == head?.digest else {
                throw IntakeError.outOfOrder(seq: snapshot.seq, head: head?.seq, headDigest: head?.digest)
            }
            let change = try apply(snapshot, delta, firstSnapshot: head == nil, db: db)
            try AuditChain.append([AuditEvent(actor: node, action: "snapshot.apply", dataset: dataset, digest: snapshot.digest,
                                              status: 201, detail: "seq \(snapshot.seq), +\(delta.addedCount) -\(snapshot.removed.count)")],
                                  in: SQLiteIndexConnection(db))
            return change
        }, afterCommit: { change in
            if let change { counts.apply(datasetKey: change.datasetKey, dataset: change.dataset, changed: change.facets) }
        })
        return change == nil ? .alreadyHead : .applied
    }

    private struct AppliedChange {
        var datasetKey: Int64
        var dataset: FacetCounts.HeldDataset
        var facets: [Facet]
    }

    private func apply(_ snapshot: ReceivedSnapshot, _ delta: EntryDelta, firstSnapshot: Bool, db: Database) throws -> AppliedChange {
        try db.execute(sql: "INSERT OR IGNORE INTO dataset_keys (node, dataset) VALUES (?, ?)", arguments: [snapshot.node, snapshot.dataset])
        guard let datasetKey = try Int64.fetchOne(db, sql: "SELECT id FROM dataset_keys WHERE node = ? AND dataset = ?",
                                                  arguments: [snapshot.node, snapshot.dataset]) else {
            throw DatabaseError(resultCode: .SQLITE_CORRUPT, message: "dataset_keys has no row for \(snapshot.node)/\(snapshot.dataset) after inserting it")
        }
        var instances: [Int64: Int64] = [:]
        let facetOfEntry = try db.cachedStatement(sql: "SELECT facet FROM entries WHERE dataset_key = ? AND digest = ?")
        let delete = try db.cachedStatement(sql: "DELETE FROM entries WHERE dataset_key = ? AND digest = ?")
        for index in 0..<delta.removedCount {
            let digest = delta.removedDigest(index)
            guard let facet = try Int64.fetchOne(facetOfEntry, arguments: [datasetKey, digest]) else {
                throw IntakeError.unknownRemoval("sha256:" + Hex.encode(digest))
            }
            try delete.execute(arguments: [datasetKey, digest])
            instances[facet, default: 0] -= 1
        }
        let upsertFacet = try db.cachedStatement(sql: """
            INSERT INTO facets (dataset_key, subject, study_uid, modality, body_part, manufacturer, sex, instances)
            VALUES (?, ?, ?, ?, ?, ?, ?, 0)
            ON CONFLICT DO UPDATE SET instances = instances RETURNING id
            """)
        let facetIDs = try delta.facets.map { values in
            guard let id = try Int64.fetchOne(upsertFacet, arguments: StatementArguments([datasetKey] + values)) else {
                throw DatabaseError(resultCode: .SQLITE_CORRUPT, message: "the facet upsert returned no id")
            }
            return id
        }
        let facetOfAdded = delta.facetOfAdded.map { facetIDs[Int($0)] }
        for facet in facetOfAdded { instances[facet, default: 0] += 1 }
        if !firstSnapshot {
            // An entry whose attributes changed replaces the old one: its old facet counts one fewer.
            for index in 0..<delta.addedCount {
                if let old = try Int64.fetchOne(facetOfEntry, arguments: [datasetKey, delta.addedDigest(index)]) { instances[old, default: 0] -= 1 }
            }
        }
        try insertEntries(datasetKey: datasetKey, delta: delta, facets: facetOfAdded, db: db)
        let changed = try updateFacets(instances, db: db)
        // The hub's own copy, in digest order, must hash to the root the node signed. A first
        // snapshot is the whole copy, already in order.
        let leaves = firstSnapshot ? delta.leaves : try storedLeaves(datasetKey, db: db)
        let root = Merkle.root(leaves: leaves)
        let count = leaves.count / Merkle.hashSize
        guard root == snapshot.entriesRoot, Int64(count) == snapshot.entries else {
            throw IntakeError.rootMismatch(claimed: snapshot.entriesRoot, computed: root)
        }
        let metadata = String(decoding: (snapshot.header["metadata"] ?? .object([:])).canonicalBytes(), as: UTF8.self)
        try db.execute(sql: """
            INSERT OR REPLACE INTO heads (node, dataset, seq, digest, entries_root, entries, metadata, summary, created_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: [snapshot.node, snapshot.dataset, snapshot.seq, snapshot.digest, root, count, metadata,
                             String(decoding: (snapshot.header["summary"] ?? .object([:])).canonicalBytes(), as: UTF8.self),
                             snapshot.header["created_at"]?.string, Date().timeIntervalSince1970])
        return AppliedChange(datasetKey: datasetKey, dataset: FacetCounts.held(node: snapshot.node, dataset: snapshot.dataset, metadata: metadata),
                             facets: changed)
    }

    /// Inserts (or replaces) the added entries through SQLite's C API, binding slices of the flat
    /// digest and leaf buffers in place: at a million rows GRDB's per-row argument boxing and two
    /// `Data` copies cost twice the b-tree inserts themselves.
    private func insertEntries(datasetKey: Int64, delta: EntryDelta, facets: [Int64], db: Database) throws {
        let insert = try db.cachedStatement(sql: "INSERT OR REPLACE INTO entries (dataset_key, digest, leaf, facet) VALUES (?, ?, ?, ?)")
        let statement = insert.sqliteStatement
        func check(_ code: Int32, _ what: String) throws {
            guard code == SQLITE_OK else {
                throw DatabaseError(resultCode: ResultCode(rawValue: code),
                                    message: "\(what): " + String(cString: sqlite3_errmsg(db.sqliteConnection)), sql: insert.sql)
            }
        }
        try delta.addedDigests.withUnsafeBytes { digests in
            try delta.leaves.withUnsafeBytes { leaves in
                guard let digestBase = digests.baseAddress, let leafBase = leaves.baseAddress,
                      digests.count >= delta.addedCount * 32, leaves.count >= delta.addedCount * Merkle.hashSize,
                      facets.count >= delta.addedCount
                else {
                    if delta.addedCount == 0 { return }
                    throw IntakeError.malformed("entry buffers shorter than the \(delta.addedCount) added entries")
                }
                // The bindings point into these buffers (SQLITE_STATIC): they are cleared before the
                // buffers go away, on every path out, and the statement is left reset for its next user.
                defer {
                    sqlite3_reset(statement)
                    sqlite3_clear_bindings(statement)
                }
                for index in 0..<delta.addedCount {
                    sqlite3_reset(statement)
                    try check(sqlite3_bind_int64(statement, 1, datasetKey), "bind dataset key")
                    try check(sqlite3_bind_blob(statement, 2, digestBase + index * 32, 32, nil), "bind digest")
                    try check(sqlite3_bind_blob(statement, 3, leafBase + index * Merkle.hashSize, Int32(Merkle.hashSize), nil), "bind leaf")
                    try check(sqlite3_bind_int64(statement, 4, facets[index]), "bind facet")
                    let code = sqlite3_step(statement)
                    guard code == SQLITE_DONE else {
                        throw DatabaseError(resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(db.sqliteConnection)),
                                            sql: insert.sql)
                    }
                }
            }
        }
    }

    /// Adds each facet's change in instances; facets left with none are deleted (and returned with 0).
    private func updateFacets(_ instances: [Int64: Int64], db: Database) throws -> [Facet] {
        let update = try db.cachedStatement(sql: """
            UPDATE facets SET instances = instances + ? WHERE id = ?
            RETURNING id, dataset_key, subject, study_uid, modality, body_part, manufacturer, sex, instances
            """)
        let prune = try db.cachedStatement(sql: "DELETE FROM facets WHERE id = ?")
        var changed: [Facet] = []
        for (id, change) in instances where change != 0 {
            guard let row = try Row.fetchOne(update, arguments: [change, id]) else { continue }
            let facet = Facet(id: row[0], datasetKey: row[1], values: (2..<8).map { row[$0] }, instances: row[8])
            if facet.instances <= 0 { try prune.execute(arguments: [id]) }
            changed.append(facet)
        }
        return changed
    }

    private func storedLeaves(_ datasetKey: Int64, db: Database) throws -> [UInt8] {
        var leaves: [UInt8] = []
        let rows = try Row.fetchCursor(db, sql: "SELECT leaf FROM entries WHERE dataset_key = ? ORDER BY digest", arguments: [datasetKey])
        while let row = try rows.next() {
            try row.withUnsafeData(atIndex: 0) { leaf in if let leaf { leaves.append(contentsOf: leaf) } }
        }
        return leaves
    }

    /// Loads the in-memory count working set now rather than on the first count query.
    public func loadCounts() throws {
        try pool.writeWithoutTransaction { db in try counts.load(db) }
    }
}

/// What a snapshot changes, taken apart before the write transaction: added entries' digests (32
/// bytes each, strictly increasing), leaf hashes and facets; removed digests (strictly increasing).
struct EntryDelta: Sendable {
    /// The digest, then the facet's attributes in their order.
    static let keys: [StaticString] = ["digest"] + Facet.attributes
    private(set) var addedDigests: [UInt8] = []
    private(set) var leaves: [UInt8] = []
    private(set) var facetOfAdded: [Int32] = []
    /// Distinct facet values (`Facet.columns` order) among added entries.
    private(set) var facets: [[String]] = []
    private(set) var removedDigests: [UInt8] = []

    var addedCount: Int { facetOfAdded.count }
    var removedCount: Int { removedDigests.count / 32 }
    func addedDigest(_ index: Int) -> Data { Data(addedDigests[(index * 32)..<((index + 1) * 32)]) }
    func removedDigest(_ index: Int) -> Data { Data(removedDigests[(index * 32)..<((index + 1) * 32)]) }

    /// One of `count` equal slices of the added entries.
    init(_ snapshot: ReceivedSnapshot, slice: Int, of count: Int) throws {
        let all = snapshot.added
        let entries = all[(all.count * slice / count)..<(all.count * (slice + 1) / count)]
        addedDigests.reserveCapacity(entries.count * 32)
        leaves.reserveCapacity(entries.count * Merkle.hashSize)
        facetOfAdded.reserveCapacity(entries.count)
        var slots: [[String]: Int32] = [:]
        for range in entries {
            let values = try snapshot.strings(inEntry: range, keys: Self.keys)
            try Self.appendDigest(values[0], to: &addedDigests, list: "added")
            Merkle.appendLeafHash(of: snapshot.bytes[range], to: &leaves)
            facetOfAdded.append(Self.slot(of: values.dropFirst().map { $0 ?? "" }, in: &slots, facets: &facets))
        }
    }

    /// The slices in order, and the removed digests.
    init(joining slices: [EntryDelta], removed: [String]) throws {
        var slots: [[String]: Int32] = [:]
        for slice in slices {
            if addedDigests.count >= 32, slice.addedDigests.count >= 32 {
                let first = slice.addedDigests[0..<32]
                guard addedDigests[(addedDigests.count - 32)...].lexicographicallyPrecedes(first) else {
                    throw IntakeError.malformed("'added' is not in increasing digest order (sha256:\(Hex.encode(first)))")
                }
            }
            addedDigests += slice.addedDigests
            leaves += slice.leaves
            let global = slice.facets.map { Self.slot(of: $0, in: &slots, facets: &facets) }
            facetOfAdded += slice.facetOfAdded.map { global[Int($0)] }
        }
        for digest in removed { try Self.appendDigest(digest, to: &removedDigests, list: "removed") }
    }

    private static func slot(of facet: [String], in slots: inout [[String]: Int32], facets: inout [[String]]) -> Int32 {
        if let slot = slots[facet] { return slot }
        slots[facet] = Int32(facets.count)
        facets.append(facet)
        return Int32(facets.count - 1)
    }

    /// Order makes a repeated digest impossible, and lets a first snapshot's leaves be its root's.
    private static func appendDigest(_ text: String?, to digests: inout [UInt8], list: String) throws {
        guard let text, text.hasPrefix("sha256:"), let bytes = Hex.decode(text.dropFirst("sha256:".count)), bytes.count == 32 else {
            throw IntakeError.malformed("an entry in '\(list)' has no sha256 digest")
        }
        if digests.count >= 32 {
            guard digests[(digests.count - 32)...].lexicographicallyPrecedes(bytes) else {
                throw IntakeError.malformed("'\(list)' is not in increasing digest order (\(text))")
            }
        }
        digests += bytes
    }
}
