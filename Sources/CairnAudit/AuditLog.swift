import CairnFoundation
import Crypto
import Foundation
import CairnIndex

/// One thing that happened, before it is appended to the audit log.
public struct AuditEvent: Sendable, Equatable {
    /// Microseconds since 1970.
    public var atMicroseconds: Int64
    /// Who: a token's `sub`, `cli:<user>` for commands run on the node, `-` when unauthenticated.
    public var actor: String
    /// What: `read`, `head`, `upload`, `deny`, `list`, `token.issue`, `token.revoke`, ...
    public var action: String
    public var dataset: String?
    public var digest: String?
    /// The byte ranges asked for, as sent in the Range header (normalised), or nil for a whole read.
    public var range: String?
    /// Bytes sent (reads) or received (uploads).
    public var bytes: Int64?
    /// HTTP status, or 0 for CLI actions.
    public var status: Int?
    /// Why a request was denied, or what an admin action changed. Never a token or a secret.
    public var detail: String?

    public init(at date: Date = Date(), actor: String, action: String, dataset: String? = nil, digest: String? = nil,
                range: String? = nil, bytes: Int64? = nil, status: Int? = nil, detail: String? = nil) {
        atMicroseconds = Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
        self.actor = actor
        self.action = action
        self.dataset = dataset
        self.digest = digest
        self.range = range
        self.bytes = bytes
        self.status = status
        self.detail = detail
    }

    /// Fields can echo what a client sent (a parameter name, a path): a NUL, which PostgreSQL's
    /// text cannot hold, becomes U+FFFD before the event is hashed and stored, so an event is
    /// never refused by the index and never holds the audit queue up.
    var storable: AuditEvent {
        func clean(_ text: String) -> String {
            text.utf8.contains(0) ? text.replacingOccurrences(of: "\u{0}", with: "\u{FFFD}") : text
        }
        var event = self
        event.actor = clean(actor)
        event.action = clean(action)
        event.dataset = dataset.map(clean)
        event.digest = digest.map(clean)
        event.range = range.map(clean)
        event.detail = detail.map(clean)
        return event
    }

    /// The bytes the chain hashes: a JSON array with fixed field order and a fixed escaping, so
    /// any tool can recompute it.
    func canonicalLine(seq: Int64) -> String {
        func text(_ value: String?) -> String { value.map(Self.quoted) ?? "null" }
        func number<N: BinaryInteger>(_ value: N?) -> String { value.map { String($0) } ?? "null" }
        return "[\(seq),\(atMicroseconds),\(text(actor)),\(text(action)),\(text(dataset)),\(text(digest)),"
            + "\(text(range)),\(number(bytes)),\(number(status)),\(text(detail))]"
    }

    static func quoted(_ value: String) -> String {
        if value.utf8.allSatisfy({ $0 >= 0x20 && $0 != 0x22 && $0 != 0x5C }) { return "\"" + value + "\"" }
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// An appended record: the event, its sequence number and the chain hash
/// `sha256(previous hash hex + "\n" + canonical line)` (the first record's previous hash is 64 zeros).
public struct AuditRecord: Sendable, Equatable {
    public var seq: Int64
    public var event: AuditEvent
    public var hash: String

    public static let genesis = String(repeating: "0", count: 64)

    static func chain(previous: String, seq: Int64, event: AuditEvent) -> String {
        var hasher = SHA256()
        hasher.update(data: Array((previous + "\n" + event.canonicalLine(seq: seq)).utf8))
        return Hex.encode(hasher.finalize())
    }

    init(row: IndexRow) throws {
        seq = try row["seq"]
        var event = try AuditEvent(actor: row["actor"], action: row["action"], dataset: row["dataset"], digest: row["digest"],
                                   range: row["range"], bytes: row["bytes"], status: row["status"], detail: row["detail"])
        event.atMicroseconds = try row["at_us"]
        self.event = event
        hash = try row["hash"]
    }
}

/// The outcome of `cairn audit verify`.
public struct AuditVerification: Sendable {
    public var records = 0
    /// The first record whose hash or sequence number does not follow from the one before.
    public var firstBad: (seq: Int64, reason: String)?
}

/// The hash-chained audit log in an `audit` table of a node's index or a hub's catalogue: one
/// chain per database, appended under SQLite's write lock so several processes (a server, CLI
/// admin commands) keep one order.
public enum AuditChain {
    /// The table, as the node's migration v3 created it (time in integer microseconds so the hash
    /// never depends on float formatting).
    public static let tableSQL = """
        CREATE TABLE audit (
            seq INTEGER PRIMARY KEY,
            at_us INTEGER NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            dataset TEXT,
            digest TEXT,
            range TEXT,
            bytes INTEGER,
            status INTEGER,
            detail TEXT,
            hash TEXT NOT NULL
        );
        CREATE INDEX audit_at ON audit(at_us);
        """

    /// Appends events in the caller's transaction, continuing the chain from the last record.
    public static func append(_ events: [AuditEvent], in db: any IndexConnection) throws {
        if events.isEmpty { return }
        var (seq, previous) = try IndexRow.fetchOne(db, sql: "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            .map { (try $0["seq"] as Int64, try $0["hash"] as String) } ?? (0, AuditRecord.genesis)
        let insert = try db.cachedStatement(sql: """
            INSERT INTO audit (seq, at_us, actor, action, dataset, digest, range, bytes, status, detail, hash)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        for event in events.map(\.storable) {
            seq += 1
            previous = AuditRecord.chain(previous: previous, seq: seq, event: event)
            try insert.execute(arguments: [seq, event.atMicroseconds, event.actor, event.action, event.dataset,
                                           event.digest, event.range, event.bytes, event.status, event.detail, previous])
        }
    }

    /// Records from `since` on, oldest first, in pages so a long log is never held in memory.
    public static func records(in reader: any IndexDatabase, since: Date? = nil, pageSize: Int = 10_000,
                               _ body: ([AuditRecord]) throws -> Void) throws {
        let sinceMicroseconds = since.map { Int64($0.timeIntervalSince1970 * 1_000_000) } ?? Int64.min
        var after: Int64 = 0
        while true {
            let page = try reader.read { db in
                try IndexRow.fetchAll(db, sql: "SELECT * FROM audit WHERE seq > ? AND at_us >= ? ORDER BY seq LIMIT ?",
                                 arguments: [after, sinceMicroseconds, pageSize]).map(AuditRecord.init)
            }
            guard let last = page.last else { return }
            try body(page)
            after = last.seq
        }
    }

    /// Recomputes the whole chain.
    public static func verify(in reader: any IndexDatabase) throws -> AuditVerification {
        var result = AuditVerification()
        var previous = AuditRecord.genesis
        var expectedSeq: Int64 = 1
        try records(in: reader) { page in
            for record in page where result.firstBad == nil {
                result.records += 1
                if record.seq != expectedSeq {
                    result.firstBad = (record.seq, "expected record \(expectedSeq) here: records were removed")
                } else if AuditRecord.chain(previous: previous, seq: record.seq, event: record.event) != record.hash {
                    result.firstBad = (record.seq, "its hash does not follow from its contents and the record before")
                }
                previous = record.hash
                expectedSeq = record.seq + 1
            }
        }
        return result
    }

    /// Records in the log, for metrics.
    public static func count(in reader: any IndexDatabase) throws -> Int64 {
        try reader.read { db in try Int64.fetchOne(db, sql: "SELECT coalesce(max(seq), 0) FROM audit") ?? 0 }
    }
}
