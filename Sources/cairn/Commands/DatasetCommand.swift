import ArgumentParser
import CairnAudit
import CairnBlobs
import CairnAuth
import CairnDICOM
import CairnManifest
import CairnNode
import CairnSearch
import CairnStore
import Foundation

extension DatasetInfo.DeidPolicy: ExpressibleByArgument {}

struct DatasetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dataset", abstract: "Manage datasets.",
        subcommands: [Create.self, Set.self, Show.self, List.self, EraseSubject.self, Publish.self])

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

        @Option(help: "reject: verify every file against the PS3.15 Basic Profile and refuse what fails; accept: store everything.")
        var deidPolicy: DatasetInfo.DeidPolicy = .reject

        @Flag(help: ArgumentHelp("Under --deid-policy reject, also store files that are not DICOM at all (refused by default). "
            + "Files that look like DICOM but cannot be fully checked, and archives, are refused all the same."))
        var allowNonDicom = false

        @OptionGroup var deidentification: DeidentificationFlags

        @Flag(help: "Let federated searches (EUCAIM, through samply Focus) count this dataset (off by default).")
        var searchable = false

        @Option(help: ArgumentHelp("The dataset's diagnosis as a EUCAIM catalogue code (e.g. SNOMEDCT363358000, lung cancer); "
            + "default: from --cancer-type (lung, breast, colon or colorectal, prostate, rectum, pelvis).", valueName: "CODE"))
        var diagnosis: String?

        @Option(help: ArgumentHelp("Entry attributes manifests publish, comma-separated (default: "
            + ManifestAttribute.defaults.map(\.rawValue).joined(separator: ",") + ").", valueName: "LIST"))
        var publishAttributes: String?

        @Option(help: ArgumentHelp("How ingest stores this dataset's blobs: archive (smallest), balanced (the default) or fast "
            + "(fastest reads). `cairn recompress` rewrites what is already stored.", valueName: "profile"))
        var profile: StorageProfile?

        func run() throws {
            let store = try global.openStore()
            let attributes = try publishAttributes.map(ManifestAttribute.parseList)
            let options = try deidentification.options()
            try store.createDataset(id: id, title: title, description: description, cancerType: cancerType,
                                    deidPolicy: deidPolicy, allowNonDicom: allowNonDicom, storageProfile: profile)
            let info = try store.setDeidentification(
                dataset: id, options: options ?? [], pseudonymPattern: .some(deidentification.pseudonym.flatMap { $0.isEmpty ? nil : $0 }),
                allowEmbeddedDocuments: deidentification.allowEmbeddedDocuments,
                allowUnstatedBurnedIn: deidentification.allowUnstatedBurnedIn, reviewText: !deidentification.noTextReview)
            try store.appendAudit([AuditEvent(actor: AdminActor.current, action: "dataset.deidentification", dataset: id, status: 0,
                                              detail: DatasetCommand.describe(info))])
            if let attributes { try store.setManifestAttributes(attributes.map(\.rawValue).joined(separator: ","), for: id) }
            try store.setSearch(dataset: id, searchable: searchable, diagnosis: try diagnosis.map(DatasetCommand.checkedDiagnosis))
            if global.json {
                var object = DatasetCommand.deidentificationJSON(info)
                object["id"] = id
                object["allow_non_dicom"] = allowNonDicom
                Terminal.printJSON(object)
            } else {
                print("dataset \(id) ready (\(DatasetCommand.describe(info))"
                    + (allowNonDicom ? ", files that are not DICOM allowed)" : ")"))
            }
        }
    }

    static func yesNo(_ text: String, _ flag: String) throws -> Bool {
        switch text {
        case "yes": return true
        case "no": return false
        default: throw StoreError.invalidArgument("\(flag) takes yes or no, not '\(text)'")
        }
    }

    /// The gate's settings in one line (also the audit record of a change).
    static func describe(_ info: DatasetInfo) -> String {
        guard info.deidPolicy == .reject else { return "not gated (--deid-policy accept)" }
        let policy = info.deidentification
        var parts = ["gated: PS3.15 Basic Profile, options accepted: "
            + (policy.acceptedOptions.isEmpty ? "none" : policy.acceptedOptions.sorted().map(\.rawValue).joined(separator: ","))]
        parts.append(policy.pseudonymPattern.map { "pseudonym pattern \($0)" } ?? "no pseudonym pattern")
        if policy.allowEmbeddedDocuments { parts.append("embedded documents allowed") }
        if policy.allowUnstatedBurnedInAnnotation { parts.append("unstated burned-in annotation allowed") }
        parts.append(policy.reviewText ? "kept text must be reviewed" : "kept text not reviewed")
        return parts.joined(separator: "; ")
    }

    static func deidentificationJSON(_ info: DatasetInfo) -> [String: Any] {
        let policy = info.deidentification
        return ["deid_policy": info.deidPolicy.rawValue, "deid_options": policy.acceptedOptions.sorted().map(\.rawValue),
                "pseudonym": policy.pseudonymPattern ?? NSNull(), "allow_embedded_documents": policy.allowEmbeddedDocuments,
                "allow_unstated_burned_in": policy.allowUnstatedBurnedInAnnotation, "text_review": policy.reviewText]
    }

    /// The diagnosis codes the EUCAIM catalogue offers (and the reference provider's extra ones).
    static func checkedDiagnosis(_ code: String) throws -> String {
        guard EucaimCodes.diagnoses.contains(code) else {
            throw StoreError.invalidArgument("'\(code)' is not a diagnosis code Cairn knows; use one of "
                + EucaimCodes.diagnoses.sorted().joined(separator: ", "))
        }
        return code
    }

    struct Set: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change a dataset's federated-search settings or what its de-identification gate accepts.",
            discussion: "A change to the gate applies to files stored from now on; `cairn gate rescan` re-judges what is stored.")

        @OptionGroup var global: GlobalOptions

        @Argument var id: String

        @Option(help: ArgumentHelp("Replace the accepted de-identification options (comma-separated; '' for none): "
            + DeidentificationOption.allCases.map(\.rawValue).joined(separator: ", ") + ".", valueName: "LIST"))
        var deidOptions: String?

        @Option(help: ArgumentHelp("The regular expression every pseudonym must match as a whole ('' removes it).", valueName: "REGEX"))
        var pseudonym: String?

        @Option(help: ArgumentHelp("yes: store encapsulated documents and embedded files, which cannot be verified.", valueName: "yes|no"))
        var allowEmbeddedDocuments: String?

        @Option(help: ArgumentHelp("yes: US, SC, XA, RF, ES and OT images need not state Burned In Annotation.", valueName: "yes|no"))
        var allowUnstatedBurnedIn: String?

        @Option(help: ArgumentHelp("no: store kept text values nobody has reviewed; yes: each must be reviewed (cairn gate review).",
                                   valueName: "yes|no"))
        var textReview: String?

        @Option(help: ArgumentHelp("yes: federated searches count this dataset; no: they do not.", valueName: "yes|no"))
        var searchable: String?

        @Option(help: ArgumentHelp("The dataset's diagnosis as a EUCAIM catalogue code.", valueName: "CODE"))
        var diagnosis: String?

        func run() throws {
            let flag: Bool? = switch searchable {
            case nil: nil
            case "yes"?: true
            case "no"?: false
            case let other?: throw StoreError.invalidArgument("--searchable takes yes or no, not '\(other)'")
            }
            let options: Swift.Set<DeidentificationOption>?
            do { options = try deidOptions.map(DeidentificationOption.parseList) } catch {
                throw StoreError.invalidArgument("--deid-options: \(error)")
            }
            let embedded = try allowEmbeddedDocuments.map { try DatasetCommand.yesNo($0, "--allow-embedded-documents") }
            let burnedIn = try allowUnstatedBurnedIn.map { try DatasetCommand.yesNo($0, "--allow-unstated-burned-in") }
            let store = try global.openStore()
            try store.setSearch(dataset: id, searchable: flag, diagnosis: try diagnosis.map(DatasetCommand.checkedDiagnosis))
            let review = try textReview.map { try DatasetCommand.yesNo($0, "--text-review") }
            let gateChanged = options != nil || pseudonym != nil || embedded != nil || burnedIn != nil || review != nil
            let pattern: String?? = pseudonym.map { $0.isEmpty ? nil : $0 }
            let info = try store.setDeidentification(dataset: id, options: options, pseudonymPattern: pattern,
                                                     allowEmbeddedDocuments: embedded, allowUnstatedBurnedIn: burnedIn,
                                                     reviewText: review)
            if gateChanged {
                try store.appendAudit([AuditEvent(actor: AdminActor.current, action: "dataset.deidentification", dataset: id,
                                                  status: 0, detail: DatasetCommand.describe(info))])
            }
            if global.json {
                var object = DatasetCommand.deidentificationJSON(info)
                object["id"] = id
                object["searchable"] = info.searchable
                object["diagnosis"] = info.diagnosis ?? NSNull()
                Terminal.printJSON(object)
            } else {
                print("dataset \(id): federated search \(info.searchable ? "on" : "off"), diagnosis \(info.diagnosis ?? "-"); "
                    + DatasetCommand.describe(info))
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
                    "allow_non_dicom": s.info.allowNonDicom, "searchable": s.info.searchable, "quarantined": s.quarantined,
                    "reviewed_text": s.reviewedText,
                    "subjects": s.subjects, "studies": s.studies, "series": s.series, "instances": s.instances,
                    "files": s.files, "bytes": s.bytes, "stored_bytes": s.storedBytes, "by_modality": s.byModality,
                    "by_body_part": s.byBodyPart, "by_manufacturer": s.byManufacturer, "by_sex": s.bySex,
                    "erasures": s.erasures,
                ]
                if let title = s.info.title { object["title"] = title }
                if let description = s.info.description { object["description"] = description }
                if let cancerType = s.info.cancerType { object["cancer_type"] = cancerType }
                if let diagnosis = s.info.diagnosis { object["diagnosis"] = diagnosis }
                object.merge(DatasetCommand.deidentificationJSON(s.info)) { $1 }
                Terminal.printJSON(object)
                return
            }
            func line(_ counts: [String: Int]) -> String {
                counts.isEmpty ? "-" : counts.sorted { $0.value > $1.value || ($0.value == $1.value && $0.key < $1.key) }
                    .map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            }
            print("""
                dataset:       \(s.info.id)\(s.info.title.map { " (\($0))" } ?? "")
                cancer type:   \(s.info.cancerType ?? "-")\(s.info.diagnosis.map { " (diagnosis \($0))" } ?? "")
                search:        \(s.info.searchable ? "searchable (EUCAIM federated search)" : "not searchable")
                policy:        \(s.info.deidPolicy == .reject ? "reject identified files (gated)" : "accept everything (not gated)")\
                \(s.info.deidPolicy == .reject ? (s.info.allowNonDicom ? "; files that are not DICOM allowed" : "; files that are not DICOM refused") : "")
                gate:          \(DatasetCommand.describe(s.info))
                quarantined:   \(s.quarantined)\(s.quarantined > 0 ? " (cairn gate quarantine --dataset \(s.info.id))" : "")
                reviewed text: \(s.reviewedText) values (cairn gate review --dataset \(s.info.id) --reviewed)
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
            try store.appendAudit([AuditEvent(actor: AdminActor.current, action: "dataset.erase-subject", dataset: id, status: 0,
                                              detail: "subject \(subject), \(removed) instances")])
            if global.json { Terminal.printJSON(["dataset": id, "removed": removed]) } else {
                print("removed \(removed) instances of subject \(subject) from \(id); run `cairn gc` to delete unreferenced blobs")
            }
        }
    }
}

extension DatasetCommand {
    struct Publish: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make the next signed snapshot of a dataset (prints its digest; unchanged datasets keep their head).")

        @OptionGroup var global: GlobalOptions

        @Argument var id: String

        @Option(help: ArgumentHelp("This node's id, when it has none yet (default: the id chosen at init or the first publish "
            + "or serve, else the host name). A different id than the stored one is refused: see `cairn node rename`."))
        var nodeID: String?

        func run() throws {
            let store = try global.openStore()
            let key = try NodeKey.loadOrCreate(dataDirectory: store.root)
            let node = try store.claimNodeID(nodeID, fallback: ProcessInfo.processInfo.hostName)
            let outcome = try Publisher(store: store, nodeID: node, key: key.privateKey, keyID: key.keyID).publish(id)
            switch outcome {
            case .published(let snapshot):
                try store.appendAudit([AuditEvent(actor: AdminActor.current, action: "dataset.publish", dataset: id,
                                                  digest: snapshot.digest, status: 0,
                                                  detail: "seq \(snapshot.seq), +\(snapshot.added.count) -\(snapshot.removed.count)")])
                if global.json {
                    Terminal.printJSON(["dataset": id, "seq": snapshot.seq, "digest": snapshot.digest, "node": node,
                                        "added": snapshot.added.count, "removed": snapshot.removed.count,
                                        "entries_root": snapshot.entriesRoot, "changed": true])
                } else {
                    print("published \(id) seq \(snapshot.seq): \(snapshot.digest) "
                          + "(+\(snapshot.added.count) -\(snapshot.removed.count) entries)")
                }
            case .unchanged(let latest):
                if global.json {
                    Terminal.printJSON(["dataset": id, "seq": latest.seq, "digest": latest.digest, "changed": false])
                } else {
                    print("\(id) unchanged since seq \(latest.seq): \(latest.digest)")
                }
            }
        }
    }
}

extension StorageProfile: ExpressibleByArgument {}

/// What a new dataset's de-identification gate accepts (`dataset create`; `dataset set` changes it).
struct DeidentificationFlags: ParsableArguments {
    @Option(help: ArgumentHelp("De-identification options the gate accepts when a file declares them in (0012,0064), "
        + "comma-separated (default: none, the Basic Profile alone): "
        + DeidentificationOption.allCases.map(\.rawValue).joined(separator: ", ") + ".", valueName: "LIST"))
    var deidOptions: String?

    @Option(help: ArgumentHelp("A regular expression every pseudonym (Patient ID, names replaced by a dummy) must match as a whole.",
                               valueName: "REGEX"))
    var pseudonym: String?

    @Flag(help: "Store encapsulated documents and embedded files (PDF, DICOM inside), which cannot be verified.")
    var allowEmbeddedDocuments = false

    @Flag(help: "US, SC, XA, RF, ES and OT images need not state Burned In Annotation (0028,0301).")
    var allowUnstatedBurnedIn = false

    @Flag(help: "Store kept text values (kernel names, code meanings, explanations) nobody has reviewed (cairn gate review).")
    var noTextReview = false

    func options() throws -> Set<DeidentificationOption>? {
        do { return try deidOptions.map(DeidentificationOption.parseList) } catch {
            throw StoreError.invalidArgument("--deid-options: \(error)")
        }
    }

    /// The policy these flags describe (options nil: none).
    func policy() throws -> DeidentificationPolicy {
        let policy = DeidentificationPolicy(acceptedOptions: try options() ?? [], pseudonymPattern: pseudonym.flatMap { $0.isEmpty ? nil : $0 },
                                            allowEmbeddedDocuments: allowEmbeddedDocuments,
                                            allowUnstatedBurnedInAnnotation: allowUnstatedBurnedIn, reviewText: !noTextReview)
        do { return try policy.validated() } catch { throw StoreError.invalidArgument("--pseudonym: \(error)") }
    }

    /// Called by the argument parser: a bad option name or pattern is a usage error (exit 2).
    func validate() throws {
        do { _ = try policy() } catch let error as StoreError { throw ValidationError(error.description) }
    }
}
