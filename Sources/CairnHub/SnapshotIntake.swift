import CairnManifest
import Crypto
import Foundation
import GRDB

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
    public func intake(node: String, dataset: String, claimedDigest: String, body: [UInt8]) throws -> IntakeOutcome {
        do {
            return try intakeChecked(node: node, dataset: dataset, claimedDigest: claimedDigest, body: body)
        } catch let error as IntakeError {
            reject(node: node, dataset: dataset, digest: claimedDigest, reason: error.description)
            throw error
        }
    }

    private func intakeChecked(node: String, dataset: String, claimedDigest: String, body: [UInt8]) throws -> IntakeOutcome {
        guard let keyText = try publicKey(of: node) else { throw IntakeError.unenrolled(node) }
        let snapshot: Snapshot
        do { snapshot = try Snapshot(parsing: body) } catch { throw IntakeError.malformed("\(error)") }
        guard snapshot.canonicalBytes == body else { throw IntakeError.malformed("body is not in canonical form") }
        guard snapshot.digest == claimedDigest else { throw IntakeError.digestMismatch(claimed: claimedDigest, actual: snapshot.digest) }
        guard snapshot.node == node, snapshot.dataset == dataset else {
            throw IntakeError.wrongPath("snapshot is for \(snapshot.node)/\(snapshot.dataset), pushed to \(node)/\(dataset)")
        }
        guard let raw = Base64URL.decode(keyText), let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw),
              snapshot.signatureIsValid(for: key)
        else { throw IntakeError.badSignature }
        return try write { db in
            let head = try Row.fetchOne(db, sql: "SELECT seq, digest FROM heads WHERE node = ? AND dataset = ?",
                                        arguments: [node, dataset]).map { (seq: $0["seq"] as Int64, digest: $0["digest"] as String) }
            if head?.digest == snapshot.digest { return .alreadyHead }
            guard snapshot.seq == (head?.seq ?? 0) + 1, snapshot.parent == head?.digest else {
                throw IntakeError.outOfOrder(seq: snapshot.seq, head: head?.seq, headDigest: head?.digest)
            }
            try apply(snapshot, node: node, dataset: dataset, firstSnapshot: head == nil, db: db)
            return .applied
        }
    }

    private func apply(_ snapshot: Snapshot, node: String, dataset: String, firstSnapshot: Bool, db: Database) throws {
        var facets = FacetCounter(db: db, node: node, dataset: dataset)
        let delete = try db.cachedStatement(sql: "DELETE FROM entries WHERE node = ? AND dataset = ? AND digest = ?")
        for digest in snapshot.removed {
            guard let old = try facets.entryFacet(digest) else { throw IntakeError.unknownRemoval(digest) }
            try delete.execute(arguments: [node, dataset, digest])
            facets.add(old, -1)
        }
        let insert = try db.cachedStatement(sql: """
            INSERT OR REPLACE INTO entries (node, dataset, digest, subject, study_uid, modality, body_part, manufacturer, sex, entry)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        for entry in snapshot.added {
            guard let digest = entry["digest"]?.string else { throw IntakeError.malformed("an added entry has no digest") }
            // An entry whose attributes changed replaces the old one: move its facet count too.
            if !firstSnapshot, let old = try facets.entryFacet(digest) { facets.add(old, -1) }
            facets.add(FacetCounter.facet(of: entry), 1)
            try insert.execute(arguments: [node, dataset, digest, entry["subject"]?.string, entry["study_uid"]?.string,
                                           entry["modality"]?.string, entry["body_part"]?.string,
                                           entry["manufacturer"]?.string, entry["sex"]?.string,
                                           Data(entry.canonicalBytes())])
        }
        try facets.flush()
        // The hub's own copy, in digest order, must hash to the root the node signed.
        var leaves: [[UInt8]] = []
        let rows = try Row.fetchCursor(db, sql: "SELECT entry FROM entries WHERE node = ? AND dataset = ? ORDER BY digest",
                                       arguments: [node, dataset])
        while let row = try rows.next() { leaves.append(Merkle.leafHash([UInt8](row["entry"] as Data))) }
        let root = Merkle.root(leaves: leaves)
        guard root == snapshot.entriesRoot, Int64(leaves.count) == snapshot.document["entries"]?.int else {
            throw IntakeError.rootMismatch(claimed: snapshot.entriesRoot, computed: root)
        }
        let document = snapshot.document
        try db.execute(sql: """
            INSERT OR REPLACE INTO heads (node, dataset, seq, digest, entries_root, entries, metadata, summary, created_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: [node, dataset, snapshot.seq, snapshot.digest, root, leaves.count,
                             String(decoding: (document["metadata"] ?? .object([:])).canonicalBytes(), as: UTF8.self),
                             String(decoding: (document["summary"] ?? .object([:])).canonicalBytes(), as: UTF8.self),
                             document["created_at"]?.string, Date().timeIntervalSince1970])
    }
}

/// Keeps the `facets` table in step with `entries` inside one intake transaction: changes are
/// summed in memory and written once per facet (a million entries fold into a few thousand rows).
struct FacetCounter {
    let db: Database
    let node: String
    let dataset: String
    private var deltas: [[String]: Int] = [:]

    init(db: Database, node: String, dataset: String) {
        self.db = db
        self.node = node
        self.dataset = dataset
    }

    static let columns = ["subject", "study_uid", "modality", "body_part", "manufacturer", "sex"]

    static func facet(of entry: JSONValue) -> [String] { columns.map { entry[$0]?.string ?? "" } }

    func entryFacet(_ digest: String) throws -> [String]? {
        try Row.fetchOne(db.cachedStatement(sql: """
            SELECT coalesce(subject, ''), coalesce(study_uid, ''), coalesce(modality, ''), coalesce(body_part, ''),
                   coalesce(manufacturer, ''), coalesce(sex, '') FROM entries WHERE node = ? AND dataset = ? AND digest = ?
            """), arguments: [node, dataset, digest]).map { row in (0..<6).map { row[$0] as String } }
    }

    mutating func add(_ facet: [String], _ delta: Int) { deltas[facet, default: 0] += delta }

    func flush() throws {
        let upsert = try db.cachedStatement(sql: """
            INSERT INTO facets (node, dataset, subject, study_uid, modality, body_part, manufacturer, sex, instances)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT DO UPDATE SET instances = instances + excluded.instances
            """)
        let prune = try db.cachedStatement(sql: """
            DELETE FROM facets WHERE node = ? AND dataset = ? AND subject = ? AND study_uid = ? AND modality = ?
                AND body_part = ? AND manufacturer = ? AND sex = ? AND instances <= 0
            """)
        for (facet, delta) in deltas where delta != 0 {
            let arguments = StatementArguments([node, dataset] + facet)
            try upsert.execute(arguments: arguments + [delta])
            if delta < 0 { try prune.execute(arguments: arguments) }
        }
    }
}
