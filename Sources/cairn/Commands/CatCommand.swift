import ArgumentParser
import CairnStore

struct CatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cat", abstract: "Write a blob's original bytes to stdout.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "sha256:<hex> (or bare hex).")
    var digest: String

    @Option(parsing: .unconditional, help: "START-END (END inclusive), START- (to the end) or -N (the last N bytes).")
    var range: String?

    func run() throws {
        let digest = try parseDigest(digest)
        let store = try global.openStore()
        let reader = try store.reader(digest)
        let wanted = try range.map { try ByteRange.parse($0, size: reader.size) } ?? 0..<reader.size
        var closed = false
        try reader.read(wanted) { bytes in
            if !closed && !Terminal.writeStdout(bytes) { closed = true }
        }
    }
}

func parseDigest(_ text: String) throws -> BlobDigest {
    guard let digest = BlobDigest(parsing: text) else {
        throw StoreError.invalidArgument("'\(text)' is not a digest (sha256: followed by 64 lowercase hex digits)")
    }
    return digest
}

/// `--range` syntax, resolved against a blob's size into a half-open range.
enum ByteRange {
    static func parse(_ text: String, size: UInt64) throws -> Range<UInt64> {
        let bad = StoreError.invalidArgument("--range '\(text)' is not START-END, START- or -N")
        let parts = text.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw bad }
        if parts[0].isEmpty {
            guard let suffix = UInt64(parts[1]) else { throw bad }
            return (size - min(size, suffix))..<size
        }
        guard let start = UInt64(parts[0]) else { throw bad }
        let end: UInt64
        if parts[1].isEmpty {
            end = size
        } else {
            guard let last = UInt64(parts[1]), last >= start, last < UInt64.max else { throw bad }
            end = last + 1
        }
        guard start < size || (start == 0 && size == 0), end <= size else {
            throw StoreError.invalidArgument("--range \(text) is outside the blob's \(size) bytes")
        }
        return start..<end
    }
}
