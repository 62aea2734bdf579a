import CairnDICOM
import CairnFoundation
import CairnIndex
import Crypto
import Foundation

/// The text values a gated dataset's reviewer has read and accepted. Free text the profile keeps
/// (kernel names, code meanings, window explanations, software versions) cannot be told from a
/// name by any rule, so the gate stores a file only when each such value has been accepted here
/// (`cairn gate review` lists what a set of files holds that is not, and takes the reviewed list).
public struct GateTextReview: Sendable {
    let store: BlobStore

    public init(store: BlobStore) { self.store = store }

    /// Everything accepted for a dataset.
    public func reviewed(dataset: String) throws -> Set<ReviewedText> {
        try store.index.read { db in
            var out = Set<ReviewedText>()
            for row in try IndexRow.fetchAll(db, sql: "SELECT tag, value FROM reviewed_text WHERE dataset_id = ?", arguments: [dataset]) {
                let tag: Int64 = try row["tag"]
                guard let raw = UInt32(exactly: tag) else { continue }
                out.insert(ReviewedText(tag: DicomTag(UInt16(raw >> 16), UInt16(raw & 0xFFFF)), value: try row["value"]))
            }
            return out
        }
    }

    /// Accepts values for a dataset; returns how many were not accepted before.
    @discardableResult
    public func accept(dataset: String, _ values: some Collection<ReviewedText>) throws -> Int {
        let now = Date().timeIntervalSince1970
        return try store.index.write { db in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM datasets WHERE id = ?", arguments: [dataset]) ?? false else {
                throw StoreError.invalidArgument("dataset '\(dataset)' does not exist")
            }
            var added = 0
            for value in values {
                try db.execute(sql: """
                    INSERT INTO reviewed_text(dataset_id, tag, value_sha256, value, reviewed_at) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT DO NOTHING
                    """, arguments: [dataset, Int64(value.tag.value), Self.key(value.value), value.value, now])
                added += db.changesCount
            }
            return added
        }
    }

    /// Withdraws values; files stored with them stay until `gate rescan` takes them out.
    @discardableResult
    public func revoke(dataset: String, _ values: some Collection<ReviewedText>) throws -> Int {
        try store.index.write { db in
            var removed = 0
            for value in values {
                try db.execute(sql: "DELETE FROM reviewed_text WHERE dataset_id = ? AND tag = ? AND value_sha256 = ?",
                               arguments: [dataset, Int64(value.tag.value), Self.key(value.value)])
                removed += db.changesCount
            }
            return removed
        }
    }

    static func key(_ value: String) -> String {
        Hex.encode(SHA256.hash(data: Data(value.utf8)))
    }
}
