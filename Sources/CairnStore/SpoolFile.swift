import Glibc

/// Bytes received from a client, kept in `tmp/` until they are complete and can be inspected and
/// staged. Locked like every temp file, so a store opened by another process leaves it alone;
/// removed when dropped, so an upload cut off midway leaves nothing behind.
public final class SpoolFile: @unchecked Sendable {
    // @unchecked: owned by the one request that fills it.
    public let path: String
    private let file: PosixFile
    public private(set) var length: UInt64 = 0

    static func path(in tmpRoot: String, token: String) -> String { "\(tmpRoot)/upload-\(token)-\(getpid()).partial" }

    init(path: String) throws {
        file = try PosixFile.createExclusive(path, mode: 0o600)
        self.path = path
        _ = file.tryLockExclusive()
    }

    deinit { FileSystem.remove(path) }

    /// Appends bytes; a full disk is `StoreError.diskFull`.
    public func append(_ bytes: UnsafeRawBufferPointer) throws {
        if bytes.isEmpty { return }
        try file.write(bytes, at: length)
        length += UInt64(bytes.count)
    }
}
