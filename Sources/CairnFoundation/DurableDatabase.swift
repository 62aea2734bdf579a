import GRDB

/// The SQLite settings Cairn's databases share (the node's index, the hub's catalogue): WAL
/// through a DatabasePool, `synchronous = FULL` so a reported commit survives power loss, and a
/// minute's wait on a lock held by another process.
public enum DurableDatabase {
    /// `cacheKiB`: page cache per connection, for databases whose writes outgrow SQLite's 2 MB default.
    public static func open(path: String, cacheKiB: Int? = nil) throws -> DatabasePool {
        var configuration = Configuration()
        configuration.busyMode = .timeout(60)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            if let cacheKiB { try db.execute(sql: "PRAGMA cache_size = -\(cacheKiB)") }
        }
        return try DatabasePool(path: path, configuration: configuration)
    }
}
