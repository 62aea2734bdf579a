import ArgumentParser
import CairnAudit
import CairnDICOM
import CairnIngest
import CairnStore
import Foundation
import Synchronization

struct GateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gate",
        abstract: "The de-identification gate: judge files before ingest, re-judge what is stored, review quarantine.",
        subcommands: [Check.self, Review.self, Rescan.self, Quarantine.self, Release.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The gate's verdict on each file (folders recursively), storing nothing; exit 1 if any would be refused.",
            discussion: "Judged under a dataset's policy (--dataset) or the flags given; with neither, the Basic Profile alone.")

        @OptionGroup var global: GlobalOptions

        @Argument(help: "Files or folders to judge.")
        var paths: [String]

        @Option(help: "Judge under this dataset's policy (needs the store).")
        var dataset: String?

        @OptionGroup var deidentification: DeidentificationFlags

        @Flag(help: "Files that are not DICOM pass (as in a dataset created with --allow-non-dicom).")
        var allowNonDicom = false

        @OptionGroup var parallel: ParallelOptions

        func validate() throws {
            let flagged = deidentification.deidOptions != nil || deidentification.pseudonym != nil
                || deidentification.allowEmbeddedDocuments || deidentification.allowUnstatedBurnedIn || deidentification.noTextReview
                || allowNonDicom
            if dataset != nil && flagged { throw ValidationError("--dataset takes its policy from the dataset; give no policy flags with it") }
        }

        func run() throws {
            let gate: DatasetGate
            if let dataset {
                guard let loaded = try DatasetGate.load(dataset: dataset, from: global.openStore()) else {
                    throw StoreError.invalidArgument("dataset '\(dataset)' does not exist")
                }
                gate = loaded
            } else {
                gate = DatasetGate(deidPolicy: .reject, allowNonDicom: allowNonDicom, deidentification: try deidentification.policy())
            }
            let walk = FileWalker(paths: paths)
            for failure in walk.failures { Terminal.error("cannot read \(failure.path): \(failure.reason)") }
            let files = walk.files
            let verdicts = Mutex(([GateVerdict?](repeating: nil, count: files.count), 0))
            let progress = ProgressBar(label: "gate check", totalItems: files.count, totalBytes: 0)
            WorkerPool.forEach(count: files.count, jobs: parallel.jobs) { index in
                let verdict = gate.deidPolicy == .reject
                    ? DeidentificationGate.inspect(path: files[index].path, policy: gate.deidentification).verdict : .clean
                let done = verdicts.withLock { state in
                    state.0[index] = verdict
                    state.1 += 1
                    return state.1
                }
                progress.update(items: done, bytes: 0)
            }
            progress.finish()
            var refused = 0
            var results: [[String: Any]] = []
            for (file, verdict) in zip(files, verdicts.withLock { $0.0 }) {
                let reasons = verdict.map { GateCommand.reasons($0, allowNonDicom: gate.allowNonDicom) } ?? ["not judged"]
                if !reasons.isEmpty { refused += 1 }
                if global.json {
                    results.append(["path": file.path, "stored": reasons.isEmpty, "reasons": reasons])
                } else if reasons.isEmpty {
                    print("ok\t\(Terminal.escaped(file.path))")
                } else {
                    print("refused\t\(Terminal.escaped(file.path))")
                    for reason in reasons { print("\t\(Terminal.escaped(reason))") }
                }
            }
            if global.json {
                Terminal.printJSON(["files": files.count, "refused": refused, "unreadable": walk.failures.count, "results": results])
            } else {
                print("\(files.count) files: \(files.count - refused) would be stored, \(refused) refused")
            }
            if refused > 0 || !walk.failures.isEmpty { throw CommandFailure(status: 1, message: nil) }
        }
    }

    /// A verdict's reasons one by one (a finding each, for a file the verifier refuses).
    static func reasons(_ verdict: GateVerdict, allowNonDicom: Bool) -> [String] {
        if case .identifiable(let findings) = verdict { return findings.map(\.description) }
        return verdict.refusal(allowNonDicom: allowNonDicom).map { [$0] } ?? []
    }

    struct Rescan: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-judge a dataset's stored files under the gate's current rules; exit 1 if any would now be refused.",
            discussion: "Run it after upgrading Cairn or tightening a dataset's policy. --quarantine takes what fails out of the "
                + "dataset into a holding area nothing serves, publishes, mounts or counts (`gate release` puts a file back).")

        @OptionGroup var global: GlobalOptions

        @Option(help: "The dataset to rescan.")
        var dataset: String

        @Flag(help: "Take the files that fail out of the dataset into quarantine.")
        var quarantine = false

        @OptionGroup var parallel: ParallelOptions

        func run() throws {
            let store = try global.openStore()
            guard let info = try store.dataset(dataset) else { throw StoreError.invalidArgument("dataset '\(dataset)' does not exist") }
            let total = try store.summary(of: dataset)?.files ?? 0
            let progress = ProgressBar(label: "gate rescan", totalItems: total, totalBytes: 0)
            let report = try GateRescan.run(store: store, dataset: dataset, jobs: parallel.jobs) { progress.update(items: $0, bytes: 0) }
            progress.finish()
            var taken: [QuarantinedFile] = []
            if quarantine && !report.refused.isEmpty {
                taken = try GateQuarantine(store: store).take(dataset: dataset, report.refused.map { ($0.digest, $0.reason) })
                try store.appendAudit(taken.map { file in
                    AuditEvent(actor: AdminActor.current, action: "gate.quarantine", dataset: dataset, digest: file.digest.description,
                               status: 0, detail: file.reason)
                })
            }
            try store.appendAudit([AuditEvent(actor: AdminActor.current, action: "gate.rescan", dataset: dataset, status: 0,
                                              detail: "\(report.checked) checked, \(report.refused.count) refused, "
                                                  + "\(taken.count) quarantined, \(report.unreadable.count) unreadable; "
                                                  + DatasetCommand.describe(info))])
            if global.json {
                Terminal.printJSON([
                    "dataset": dataset, "checked": report.checked, "quarantined": taken.count,
                    "refused": report.refused.map { refusal -> [String: Any] in
                        ["digest": refusal.digest.description, "name": refusal.name ?? NSNull(), "reason": refusal.reason]
                    },
                    "unreadable": report.unreadable.map { ["digest": $0.digest.description, "reason": $0.reason] },
                ] as [String: Any])
            } else {
                for refusal in report.refused {
                    print("\(quarantine ? "QUARANTINED" : "REFUSED") \(refusal.digest) \(Terminal.escaped(refusal.name ?? "-")): "
                        + Terminal.escaped(refusal.reason))
                }
                for unreadable in report.unreadable { print("UNREADABLE \(unreadable.digest): \(unreadable.reason)") }
                print("\(dataset): \(report.checked) files checked, \(report.refused.count) would now be refused"
                    + (quarantine ? ", \(taken.count) taken into quarantine" : (report.refused.isEmpty ? "" : " (--quarantine takes them out)")))
            }
            if !report.refused.isEmpty || !report.unreadable.isEmpty { throw CommandFailure(status: 1, message: nil) }
        }
    }

    struct Review: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the kept text values files hold that a dataset has not reviewed; accept or withdraw reviewed values.",
            discussion: """
                Free text the profile keeps (a kernel name, a code meaning, a window explanation) cannot be told from a \
                person's name by any rule: a gated dataset stores a file only when each such value has been reviewed. \
                List what an export holds (one JSON line per value, with the number of files), delete the lines that \
                name or describe a person, and accept the rest with --accept-file; the files that hold a deleted value \
                stay refused until the value is removed from them.
                """)

        @OptionGroup var global: GlobalOptions

        @Option(help: "The dataset whose review this is.")
        var dataset: String

        @Argument(help: "Files or folders to list the unreviewed text of.")
        var paths: [String] = []

        @Flag(help: "Accept every value listed from PATHs, unread (for text the reviewer has seen elsewhere).")
        var acceptAll = false

        @Option(help: ArgumentHelp("Accept the values in a reviewed listing (JSON lines as this command prints).", valueName: "FILE"))
        var acceptFile: String?

        @Option(help: ArgumentHelp("Withdraw the values in a listing; stored files holding them stay until `gate rescan`.",
                                   valueName: "FILE"))
        var revokeFile: String?

        @Flag(help: "List the values the dataset has accepted.")
        var reviewed = false

        @OptionGroup var parallel: ParallelOptions

        func validate() throws {
            let modes = [!paths.isEmpty, acceptFile != nil, revokeFile != nil, reviewed].filter { $0 }.count
            if modes != 1 { throw ValidationError("give PATHs, --accept-file, --revoke-file or --reviewed (one of them)") }
            if acceptAll && paths.isEmpty { throw ValidationError("--accept-all accepts what PATHs hold: give PATHs") }
        }

        func run() throws {
            let store = try global.openStore()
            guard var gate = try DatasetGate.load(dataset: dataset, from: store) else {
                throw StoreError.invalidArgument("dataset '\(dataset)' does not exist")
            }
            let review = GateTextReview(store: store)
            if reviewed {
                for value in try review.reviewed(dataset: dataset).sorted() { print(Review.line(value, files: nil)) }
                return
            }
            if let file = acceptFile ?? revokeFile {
                let values = try Review.read(listing: file)
                let changed = acceptFile != nil ? try review.accept(dataset: dataset, values) : try review.revoke(dataset: dataset, values)
                let verb = acceptFile != nil ? "accepted" : "withdrew"
                try store.appendAudit([AuditEvent(actor: AdminActor.current, action: acceptFile != nil ? "gate.review.accept" : "gate.review.revoke",
                                                  dataset: dataset, status: 0, detail: "\(changed) of \(values.count) values \(verb)")])
                print("\(dataset): \(verb) \(changed) values (\(values.count - changed) \(acceptFile != nil ? "were already accepted" : "were not accepted"))")
                return
            }
            // Listed under the dataset's policy with review on, whatever the dataset says of it.
            gate.deidentification.reviewText = true
            let policy = gate.deidentification
            let walk = FileWalker(paths: paths)
            for failure in walk.failures { Terminal.error("cannot read \(failure.path): \(failure.reason)") }
            let files = walk.files
            let found = Mutex(([ReviewedText: Int](), 0))
            let progress = ProgressBar(label: "gate review", totalItems: files.count, totalBytes: 0)
            WorkerPool.forEach(count: files.count, jobs: parallel.jobs) { index in
                var values = Swift.Set<ReviewedText>()
                if case .identifiable(let findings) = DeidentificationGate.inspect(path: files[index].path, policy: policy).verdict {
                    values = Swift.Set(findings.compactMap(\.unreviewed))
                }
                let done = found.withLock { state in
                    for value in values { state.0[value, default: 0] += 1 }
                    state.1 += 1
                    return state.1
                }
                progress.update(items: done, bytes: 0)
            }
            progress.finish()
            let values = found.withLock { $0.0 }
            for (value, count) in values.sorted(by: { $0.key < $1.key }) { print(Review.line(value, files: count)) }
            if acceptAll {
                let added = try review.accept(dataset: dataset, values.keys)
                try store.appendAudit([AuditEvent(actor: AdminActor.current, action: "gate.review.accept", dataset: dataset, status: 0,
                                                  detail: "\(added) of \(values.count) values accepted unread (--accept-all)")])
                Terminal.error("\(dataset): accepted \(added) values")
            } else {
                Terminal.error("\(values.count) unreviewed values in \(files.count) files"
                    + (values.isEmpty ? "" : "; delete the lines that name anyone, then: cairn gate review --dataset \(dataset) --accept-file FILE"))
            }
            if !walk.failures.isEmpty { throw CommandFailure(status: 1, message: nil) }
        }

        /// One value as a line of the listing: JSON, so any text (a newline, an escape) reads back exactly.
        static func line(_ value: ReviewedText, files: Int?) -> String {
            var object: [String: Any] = ["tag": value.tag.description, "value": value.value]
            object["keyword"] = DataDictionary.standard.keyword(for: value.tag) ?? (value.tag.isPrivate ? "private" : "unknown")
            if let files { object["files"] = files }
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
            return asciiOnly(String(decoding: data, as: UTF8.self))
        }

        /// JSON with every character outside printable ASCII as a `\u` escape, so what a value
        /// holds (a right-to-left override, a zero-width space, another script) shows to the
        /// reviewer as what it is; it reads back as the same string.
        static func asciiOnly(_ json: String) -> String {
            var out = ""
            for scalar in json.unicodeScalars {
                if (0x20...0x7E).contains(scalar.value) {
                    out.unicodeScalars.append(scalar)
                } else {
                    for unit in String(scalar).utf16 { out += "\\u" + String(format: "%04x", unit) }
                }
            }
            return out
        }

        /// The values of a listing; a line that is not one is an error naming its number.
        static func read(listing path: String) throws -> [ReviewedText] {
            guard let data = FileManager.default.contents(atPath: path) else { throw StoreError.invalidArgument("cannot read \(path)") }
            var values: [ReviewedText] = []
            for (number, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated()
            where !line.trimmingCharacters(in: .whitespaces).isEmpty {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let tagText = object["tag"] as? String, let tag = DicomTag(parsing: tagText),
                      let value = object["value"] as? String, !value.isEmpty else {
                    throw StoreError.invalidArgument("\(path):\(number + 1): not a line of `cairn gate review` (tag and value)")
                }
                values.append(ReviewedText(tag: tag, value: value))
            }
            return values
        }
    }

    struct Quarantine: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the files held in quarantine, with the gate's reasons.")

        @OptionGroup var global: GlobalOptions

        @Option(help: "Only this dataset's.")
        var dataset: String?

        func run() throws {
            let held = try GateQuarantine(store: global.openStore()).list(dataset: dataset)
            if global.json {
                Terminal.printJSON(["quarantined": held.map { file -> [String: Any] in
                    ["dataset": file.dataset, "digest": file.digest.description, "name": file.name ?? NSNull(),
                     "reason": file.reason, "quarantined_at": file.quarantinedAt.timeIntervalSince1970]
                }])
            } else {
                for file in held {
                    print("\(file.dataset)\t\(file.digest)\t\(Terminal.escaped(file.name ?? "-"))\t\(Terminal.escaped(file.reason))")
                }
            }
        }
    }

    struct Release: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Put a reviewed file back from quarantine into its dataset (audited).",
            discussion: "The file goes back as it is: the gate does not judge it again. Release only what a person reviewed.")

        @OptionGroup var global: GlobalOptions

        @Option(help: "The dataset the file was taken from.")
        var dataset: String

        @Argument(help: "The file's digest (sha256:…).")
        var digest: String

        func run() throws {
            guard let parsed = BlobDigest(parsing: digest) else { throw StoreError.invalidArgument("'\(digest)' is not a digest (sha256:<64 hex>)") }
            let store = try global.openStore()
            let instance = try GateRescan.instanceRecord(of: parsed, in: store)
            // What the index must never take (UIDs that are not UIDs, a NUL) stays held, reviewed or not.
            if let problem = instance?.indexProblem { throw StoreError.invalidArgument("\(parsed) cannot go back: it \(problem)") }
            let file = try GateQuarantine(store: store).release(dataset: dataset, digest: parsed, instance: instance)
            try store.appendAudit([AuditEvent(actor: AdminActor.current, action: "gate.release", dataset: dataset,
                                              digest: parsed.description, status: 0, detail: "after review; was: \(file.reason)")])
            if global.json {
                Terminal.printJSON(["dataset": dataset, "digest": parsed.description, "released": true])
            } else {
                print("released \(parsed) back into \(dataset)")
            }
        }
    }
}
