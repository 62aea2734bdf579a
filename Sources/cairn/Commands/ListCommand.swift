import ArgumentParser
import CairnStore

struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List blobs, or one dataset's entries.")

    @OptionGroup var global: GlobalOptions

    @Option(help: "Only this dataset's entries, with their names.")
    var dataset: String?

    func run() throws {
        let store = try global.openStore()
        if let dataset, !(try store.datasetExists(dataset)) {
            throw StoreError.invalidArgument("dataset '\(dataset)' does not exist")
        }
        for item in try store.list(dataset: dataset) {
            let record = item.record
            if global.json {
                var object: [String: Any] = ["digest": record.digest.description, "size": record.size,
                                             "stored_size": record.storedSize, "codec": record.codec.rawValue,
                                             "state": record.state.rawValue]
                if let name = item.name { object["name"] = name }
                Terminal.printJSON(object)
            } else {
                print([record.digest.description, String(record.size), String(record.storedSize), record.codec.rawValue,
                       record.state.rawValue, item.name ?? ""].joined(separator: "\t"))
            }
        }
    }
}
