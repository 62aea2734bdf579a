import ArgumentParser
import CairnStore

struct DatasetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dataset", abstract: "Manage datasets.", subcommands: [Create.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a dataset (idempotent).")

        @OptionGroup var global: GlobalOptions

        @Argument(help: "Dataset id: 1-128 of A-Z a-z 0-9 . _ -")
        var id: String

        @Option(help: "Human-readable title.")
        var title: String?

        func run() throws {
            let store = try global.openStore()
            try store.createDataset(id: id, title: title)
            if global.json { Terminal.printJSON(["id": id]) } else { print("dataset \(id) ready") }
        }
    }
}
