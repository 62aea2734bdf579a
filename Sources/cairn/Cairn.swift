import ArgumentParser
import CairnManifest
import CairnNode
import CairnStore
import Foundation
import Glibc

/// `cairn`: one binary for the node's operators. Exit status: 0 success, 1 the command ran and
/// found a problem, 2 bad usage or input.
@main
struct Cairn: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Cairn: a content-addressed, compressed imaging store for federated AI.",
        subcommands: [
            InitCommand.self, IngestCommand.self, CatCommand.self, PathCommand.self, ListCommand.self,
            StatsCommand.self, VerifyCommand.self, GCCommand.self, DatasetCommand.self, GateCommand.self, DicomCommand.self,
            KeyCommand.self, TokenCommand.self, AuditCommand.self, NodeCommand.self, HubCommand.self, MountCommand.self,
            ReindexCommand.self,
            RecompressCommand.self,
        ])

    @OptionGroup var global: GlobalOptions

    static func main() async {
        signal(SIGPIPE, SIG_IGN)
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let failure as CommandFailure {
            if let message = failure.message { Terminal.error(message) }
            Glibc.exit(failure.status)
        } catch let error as StoreError {
            Terminal.error(error.description)
            Glibc.exit(error.exitStatus)
        } catch let error as ManifestError {
            Terminal.error(error.description)  // an attribute list or document the user gave: bad input
            Glibc.exit(2)
        } catch {
            let code = exitCode(for: error)
            if code == .success || code == .validationFailure || code.rawValue == 64 {
                let message = fullMessage(for: error)
                if code == .success { print(message) } else { Terminal.error(message) }
                Glibc.exit(code == .success ? 0 : 2)
            }
            Terminal.error(fullMessage(for: error))
            Glibc.exit(code.rawValue == 1 ? 1 : 2)
        }
    }
}

/// A command's chosen exit status, with an optional message for stderr.
struct CommandFailure: Error {
    var status: Int32
    var message: String?
}

extension StoreError {
    /// Bad input is 2; a store that is damaged or failing is 1 (a problem found).
    var exitStatus: Int32 {
        switch self {
        case .notInitialized, .notFound, .invalidArgument, .rangeNotSatisfiable: return 2
        default: return 1
        }
    }
}

/// `--jobs`, for the commands that work on several files at once.
struct ParallelOptions: ParsableArguments {
    @Option(help: "Threads working in parallel; defaults to the number of cores.")
    var jobs: Int = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        guard jobs >= 1, jobs <= 256 else { throw ValidationError("--jobs must be between 1 and 256") }
    }
}

struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Data directory (default: $CAIRN_DATA, else ./cairn-data).", valueName: "DIR"))
    var data: String?

    @Option(name: .long, help: ArgumentHelp("Config file (JSON): where the index and blobs live (`blob_store`, `s3_endpoint`, `s3_region`), and for `node serve` the server's settings (default: $CAIRN_CONFIG).", valueName: "FILE"))
    var config: String?

    @Flag(name: .long, help: "Machine-readable JSON output.")
    var json = false

    /// `--config`, else `$CAIRN_CONFIG`.
    var configPath: String? {
        if let config { return config }
        if let fromEnvironment = getenv("CAIRN_CONFIG"), fromEnvironment.pointee != 0 { return String(cString: fromEnvironment) }
        return nil
    }

    /// The storage keys of the config file; embedded defaults (SQLite, files) without one. A key
    /// neither the store nor the node server knows is refused: a misspelt `blob_store` must not
    /// quietly leave blobs on the local disk.
    func storageConfig() throws -> StorageConfig {
        guard let path = configPath else { return StorageConfig() }
        let (storage, otherKeys) = try StorageConfig.load(path: path)
        let unknown = otherKeys.subtracting(NodeConfig.fileKeys)
        guard unknown.isEmpty else {
            throw StoreError.invalidArgument("\(path): unknown keys \(unknown.sorted().joined(separator: ", "))")
        }
        return storage
    }

    var dataDirectory: String {
        if let data { return data }
        if let fromEnvironment = getenv("CAIRN_DATA") { return String(cString: fromEnvironment) }
        return "./cairn-data"
    }

    func openStore() throws -> BlobStore { try BlobStore.open(at: dataDirectory, storage: storageConfig()) }

    /// The store for a serving process (`mount`): with the decoded-frame cache the configuration sets.
    func openServingStore() throws -> BlobStore {
        let storage = try storageConfig()
        return try BlobStore.open(at: dataDirectory, storage: storage, readCacheBytes: storage.effectiveReadCacheBytes)
    }
}
