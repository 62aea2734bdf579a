import Glibc

/// One regular file found under the paths given to `ingest`.
public struct FoundFile: Sendable {
    public var path: String
    /// Path relative to the argument it was found under (the argument's base name for a file).
    public var name: String
    public var size: UInt64
}

/// A path that could not be walked, with the reason.
public struct WalkFailure: Sendable, Error {
    public var path: String
    public var reason: String
}

/// Expands files and folders (recursively) into regular files. Follows symbolic links, but
/// never enters a directory twice, so symlink loops end; unreadable entries become failures.
public struct FileWalker {
    public private(set) var files: [FoundFile] = []
    public private(set) var failures: [WalkFailure] = []
    private var visitedDirectories = Set<[UInt64]>()

    public init(paths: [String]) {
        for path in paths {
            let trimmed = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
            let base = trimmed.split(separator: "/").last.map(String.init) ?? trimmed
            visit(trimmed, name: base, isRoot: true)
        }
    }

    private mutating func visit(_ path: String, name: String, isRoot: Bool) {
        var info = stat()
        guard stat(path, &info) == 0 else {
            failures.append(WalkFailure(path: path, reason: String(cString: strerror(errno))))
            return
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG:
            files.append(FoundFile(path: path, name: name, size: UInt64(info.st_size)))
        case S_IFDIR:
            let key = [UInt64(info.st_dev), UInt64(info.st_ino)]
            guard visitedDirectories.insert(key).inserted else { return }
            guard let directory = opendir(path) else {
                failures.append(WalkFailure(path: path, reason: String(cString: strerror(errno))))
                return
            }
            var entries: [String] = []
            while let entry = readdir(directory) {
                let entryName = withUnsafePointer(to: entry.pointee.d_name) {
                    $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
                }
                if entryName != "." && entryName != ".." { entries.append(entryName) }
            }
            closedir(directory)
            for entry in entries.sorted() {
                visit(path + "/" + entry, name: isRoot ? entry : name + "/" + entry, isRoot: false)
            }
        default:
            if isRoot { failures.append(WalkFailure(path: path, reason: "not a regular file or directory")) }
        }
    }
}
