import Hummingbird

extension RequestBody {
    /// The first `limit + 1` bytes at most: enough for the caller to refuse a body over `limit`
    /// with its own answer, without holding more of it.
    public func prefix(upTo limit: Int) async throws -> [UInt8] {
        var bytes: [UInt8] = []
        for try await chunk in self {
            bytes.append(contentsOf: chunk.readableBytesView.prefix(limit + 1 - bytes.count))
            if bytes.count > limit { break }
        }
        return bytes
    }
}
