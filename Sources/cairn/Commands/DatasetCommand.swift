import ArgumentParser
import CairnStore

extension DatasetInfo.DeidPolicy: ExpressibleByArgument {}

struct DatasetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dataset", abstract: "Manage datasets.", subcommands: [Create.self, Show.self, List.self, EraseSubject.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a dataset, or update its description (idempotent).")

        @OptionGroup var global: GlobalOptions

        @Argument(help: "Dataset id: 1-128 of A-Z a-z 0-9 . _ -")
        var id: String

        @Option(help: "Human-readable title.")
        var title: String?

        @Option(help: "Longer description.")
        var description: String?

        @Option(help: "Cancer type (e.g. lung, breast, prostate, colorectal).")
        var cancerType: String?

        @Option(help: "reject: refuse files with direct identifiers unless PatientIdentityRemoved=YES; accept: store everything.")
        var deidPolicy: DatasetInfo.DeidPolicy = .reject

        func run() throws {
            let store = try global.openStore()
            try store.createDataset(id: id, title: title, description: description, cancerType: cancerType,
                                    deidPolicy: deidPolicy)
            if global.json { Terminal.printJSON(["id": id, "deid_policy": deidPolicy.rawValue]) } else {
                print("dataset \(id) ready (de-identification policy: \(deidPolicy.rawValue))")
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Counts and breakdowns of one dataset.")

        @OptionGroup var global: GlobalOptions

        @Argument var id: String

        func run() throws {
            let store = try global.openStore()
            guard let s = try store.summary(of: id) else { throw StoreError.invalidArgument("dataset '\(id)' does not exist") }
            if global.json {
                var object: [String: Any] = [
                    "id": s.info.id, "deid_policy": s.info.deidPolicy.rawValue, "gated": s.info.deidPolicy == .reject,
                    "subjects": s.subjects, "studies": s.studies, "series": s.series, "instances": s.instances,
                    "files": s.files, "bytes": s.bytes, "stored_bytes": s.storedBytes, "by_modality": s.byModality,
                    "by_body_part": s.byBodyPart, "by_manufacturer": s.byManufacturer, "by_sex": s.bySex,
                    "erasures": s.erasures,
                ]
                if let title = s.info.title { object["title"] = title }
                if let description = s.info.description { object["description"] = description }
                if let cancerType = s.info.cancerType { object["cancer_type"] = cancerType }
                Terminal.printJSON(object)
                return
            }
            func line(_ counts: [String: Int]) -> String {
                counts.isEmpty ? "-" : counts.sorted { $0.value > $1.value || ($0.value == $1.value && $0.key < $1.key) }
                    .map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            }
            print("""
                dataset:       \(s.info.id)\(s.info.title.map { " (\($0))" } ?? "")
                cancer type:   \(s.info.cancerType ?? "-")
                policy:        \(s.info.deidPolicy == .reject ? "reject identified files (gated)" : "accept everything (not gated)")
                subjects:      \(s.subjects)
                studies:       \(s.studies)
                series:        \(s.series)
                instances:     \(s.instances) (\(s.files) files, \(Terminal.bytes(s.bytes)), stored \(Terminal.bytes(s.storedBytes)))
                modality:      \(line(s.byModality))
                body part:     \(line(s.byBodyPart))
                manufacturer:  \(line(s.byManufacturer))
                sex:           \(line(s.bySex))
                erasures:      \(s.erasures)
                """)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List datasets.")

        @OptionGroup var global: GlobalOptions

        func run() throws {
            for info in try global.openStore().datasets() {
                if global.json {
                    Terminal.printJSON(["id": info.id, "title": info.title ?? "", "deid_policy": info.deidPolicy.rawValue])
                } else {
                    print("\(info.id)\t\(info.deidPolicy.rawValue)\t\(info.title ?? "")")
                }
            }
        }
    }

    struct EraseSubject: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "erase-subject",
            abstract: "Remove a subject's instances from a dataset (consent withdrawn); `gc` then deletes unreferenced blobs.")

        @OptionGroup var global: GlobalOptions

        @Argument var id: String
        @Argument(help: "The subject's pseudonym (PatientID).") var subject: String

        func run() throws {
            let store = try global.openStore()
            guard try store.datasetExists(id) else { throw StoreError.invalidArgument("dataset '\(id)' does not exist") }
            let removed = try store.eraseSubject(subject, from: id)
            if global.json { Terminal.printJSON(["dataset": id, "removed": removed]) } else {
                print("removed \(removed) instances of subject \(subject) from \(id); run `cairn gc` to delete unreferenced blobs")
            }
        }
    }
}
