import ArgumentParser
import CairnStore
import Foundation
import Synchronization

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Re-read blobs, check every frame checksum and digest; exit 1 if any is corrupt or missing.")

    @OptionGroup var global: GlobalOptions

    @Option(help: "Check a random sample of about PERCENT % of the blobs.")
    var sample: Double?

    @OptionGroup var parallel: ParallelOptions
    var jobs: Int { parallel.jobs }

    func validate() throws {
        if let sample, !(sample > 0 && sample <= 100) { throw ValidationError("--sample must be in (0, 100]") }
    }

    func run() throws {
        let store = try global.openStore()
        let digests = try store.digestsToVerify(samplePercent: sample)
        let progress = ProgressBar(label: "verify", totalItems: digests.count, totalBytes: 0)
        let report = Mutex(VerifyReport())
        let failure = Mutex<StoreError?>(nil)
        WorkerPool.forEach(count: digests.count, jobs: jobs) { index in
            let digest = digests[index]
            do {
                let problem = try store.verifyBlob(digest)
                let size = (try? store.record(digest))?.size ?? 0
                let checked = report.withLock { report in
                    report.checked += 1
                    report.bytesChecked += size
                    if let problem { report.problems.append(problem) }
                    return report.checked
                }
                progress.update(items: checked, bytes: 0)
            } catch let error as StoreError {
                failure.withLock { $0 = error }
            } catch {
                failure.withLock { $0 = .index("\(error)") }
            }
        }
        progress.finish()
        if let error = failure.withLock({ $0 }) { throw error }
        var result = report.withLock { $0 }
        if sample == nil { result.orphanFiles = try store.orphanFiles(olderThan: 0) }
        result.problems.sort { $0.digest < $1.digest }
        if global.json {
            Terminal.printJSON([
                "checked": result.checked, "bytes_checked": result.bytesChecked, "clean": result.isClean,
                "problems": result.problems.map { ["digest": $0.digest.description, "state": $0.state.rawValue, "detail": $0.detail] },
                "orphan_files": result.orphanFiles,
            ] as [String: Any])
        } else {
            for problem in result.problems { print("\(problem.state.rawValue.uppercased()) \(problem.digest): \(problem.detail)") }
            for orphan in result.orphanFiles { print("ORPHAN \(orphan) (no index row; `cairn gc` removes it after an hour)") }
            let corrupt = result.problems.filter { $0.state == .corrupt }.count
            print("verified \(result.checked) blobs (\(Terminal.bytes(result.bytesChecked))): "
                  + "\(corrupt) corrupt, \(result.problems.count - corrupt) missing, \(result.orphanFiles.count) orphan files")
        }
        if !result.isClean { throw CommandFailure(status: 1, message: nil) }
    }
}
