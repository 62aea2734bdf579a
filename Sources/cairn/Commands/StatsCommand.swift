import ArgumentParser
import CairnStore
import Foundation

struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stats", abstract: "Totals of the store.")

    @OptionGroup var global: GlobalOptions

    func run() throws {
        let store = try global.openStore()
        let readCache = try global.storageConfig().effectiveReadCacheBytes
        let stats = try store.stats()
        let ratio = stats.storedBytes > 0 ? Double(stats.bytes) / Double(stats.storedBytes) : 1
        let outbox = try store.outbox()
        let lag = outbox.lag()
        if global.json {
            var object: [String: Any] = [
                "data": store.root, "blobs": stats.blobs, "bytes": stats.bytes, "stored_bytes": stats.storedBytes,
                "ratio": (ratio * 1000).rounded() / 1000, "by_codec": stats.byCodec, "missing": stats.missing,
                "corrupt": stats.corrupt, "datasets": stats.datasets, "dataset_entries": stats.datasetEntries,
                "frame_size": stats.frameSize, "read_cache_bytes": readCache,
            ]
            if let free = stats.diskFree { object["disk_free"] = free }
            object["replication"] = [
                "pending_datasets": outbox.count, "lag_seconds": (lag * 10).rounded() / 10,
                "failed_attempts": outbox.failedAttempts, "halted_datasets": outbox.halted.count,
                "pending": outbox.map { item -> [String: Any] in
                    var entry: [String: Any] = ["dataset": item.dataset, "from_seq": item.oldestSeq, "to_seq": item.latestSeq,
                                                "attempts": item.attempts]
                    if let error = item.lastError { entry["last_error"] = error }
                    if let halted = item.halted { entry["halted"] = halted }
                    return entry
                },
            ]
            Terminal.printJSON(object)
            return
        }
        let halted = outbox.halted.map { "\n             HALTED \($0.dataset): the hub refused it for good (retried at the next node start): \($0.halted ?? "")" }
            .joined()
        let codecs = stats.byCodec.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        print("""
            data:        \(store.root)
            blobs:       \(stats.blobs) (\(codecs.isEmpty ? "none" : codecs))
            original:    \(Terminal.bytes(stats.bytes))
            stored:      \(Terminal.bytes(stats.storedBytes)) (\(String(format: "%.2f", ratio))x smaller)
            datasets:    \(stats.datasets) (\(stats.datasetEntries) entries)
            damaged:     \(stats.missing) missing, \(stats.corrupt) corrupt (as of the last verify or read)
            frame size:  \(stats.frameSize) bytes
            read cache:  \(readCache == 0 ? "off" : Terminal.bytes(UInt64(readCache))) of decoded frames per serving process (read_cache_bytes)
            disk free:   \(stats.diskFree.map(Terminal.bytes) ?? "unknown")
            replication: \(outbox.isEmpty ? "up to date (or never published)" : "\(outbox.count) datasets waiting for the hub, "
                + "oldest for \(Int(lag)) s, \(outbox.failedAttempts) failed attempts"
                + (outbox.compactMap(\.lastError).first.map { "; last error: \($0)" } ?? ""))\(halted)
            """)
    }
}
