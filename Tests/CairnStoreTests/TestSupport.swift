import CairnIndex
import CairnTestSupport
import Foundation
import Testing
@testable import CairnStore

/// A fresh data directory under the system temp dir, removed by `cleanup()`.
struct TempStore {
    let root: String
    let store: BlobStore

    init(frameSize: Int = WriteOptions.defaultFrameSize, readCacheBytes: Int = 0) throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-test-\(UUID().uuidString)").path
        store = try BlobStore.initialize(at: root, frameSize: frameSize, readCacheBytes: readCacheBytes)
    }

    func cleanup() { try? FileManager.default.removeItem(atPath: root) }
}

enum Bytes {
    static func random(_ count: Int, seed: UInt64) -> [UInt8] {
        var rng = SeededRandom(seed: seed)
        var out = [UInt8](repeating: 0, count: count)
        var i = 0
        while i < count {
            let word = rng.next()
            for shift in stride(from: 0, to: 64, by: 8) where i < count {
                out[i] = UInt8(truncatingIfNeeded: word >> UInt64(shift))
                i += 1
            }
        }
        return out
    }

    /// Compressible: 16-bit "image" samples with small noise, like a CT slice.
    static func imageLike(_ count: Int, seed: UInt64) -> [UInt8] {
        var rng = SeededRandom(seed: seed)
        var out = [UInt8](repeating: 0, count: count)
        var i = 0
        while i + 1 < count {
            let value = UInt16(1000 + (i / 2) % 512 + Int(rng.next() % 16))
            out[i] = UInt8(value & 0xFF)
            out[i + 1] = UInt8(value >> 8)
            i += 2
        }
        return out
    }
}

func flipByte(at offset: UInt64, in path: String) throws {
    chmod(path, 0o644)
    let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
    try handle.seek(toOffset: offset)
    let byte = try handle.read(upToCount: 1)![0]
    try handle.seek(toOffset: offset)
    try handle.write(contentsOf: Data([byte ^ 0x5A]))
    try handle.close()
}

/// A new, empty database on the PostgreSQL server CAIRN_TEST_PG_URL names (Tools/postgres.sh
/// starts one; Tools/test.sh sets it and CAIRN_REQUIRE_PG=1). Nil when there is none and none is
/// required, as in a plain `swift test`.
enum PostgresTestDatabase {
    static func create() throws -> PostgresTarget? {
        let environment = ProcessInfo.processInfo.environment
        guard let server = environment["CAIRN_TEST_PG_URL"] else {
            if environment["CAIRN_REQUIRE_PG"] == "1" { Issue.record("CAIRN_REQUIRE_PG=1 but CAIRN_TEST_PG_URL is not set") }
            return nil
        }
        let name = "cairn_swift_" + UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: "")
        let admin = try PostgresIndexDatabase(target: PostgresTarget(parsing: server + "/postgres"), password: nil, allowPlaintext: true)
        // CREATE DATABASE cannot run in a transaction: one autocommitted statement.
        try admin.readStatement { db in try db.execute(sql: "CREATE DATABASE \(name)") }
        return try PostgresTarget(parsing: server + "/" + name)
    }
}
