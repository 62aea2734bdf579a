import ArgumentParser
import CairnStore

struct PathCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "path", abstract: "Print the file (or s3:// object) that holds a blob.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "sha256:<hex> (or bare hex).")
    var digest: String

    func run() throws {
        let digest = try parseDigest(digest)
        let store = try global.openStore()
        guard let record = try store.record(digest) else { throw StoreError.notFound(digest) }
        let path = store.location(of: digest)
        if global.json {
            Terminal.printJSON(["digest": digest.description, "path": path, "codec": record.codec.rawValue])
        } else {
            print(path)
        }
    }
}
