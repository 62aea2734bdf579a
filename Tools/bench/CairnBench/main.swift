import CairnAudit
import CairnDICOM
import CairnIngest
import CairnStore
import Foundation

/// In-process read benchmarks over a Cairn data directory, one thread, for Tools/bench/bench.py.
///   cairn-bench dicom-headers DIR SECONDS [parse]
///                                        parse + index attributes + the gate's verdict (every
///                                        option accepted) of each file's header: headers/s;
///                                        `parse` leaves the gate out
///   cairn-bench read-all DATA            whole-blob reads of every blob: MB/s of original bytes
///   cairn-bench ranges DATA SIZE SECONDS [aligned]
///                                        random SIZE-byte ranges from zstd blobs: reads/s;
///                                        `aligned` starts them at multiples of SIZE, as block-wise
///                                        clients (fsspec, say) read
///   cairn-bench audit-append DATA BATCH  append audit records in batches of BATCH (as the node's
///                                        audit trail does) into a copy of DATA: records/s
/// Prints one JSON object.
@main
struct CairnBench {
    static func main() throws {
        let arguments = CommandLine.arguments
        guard arguments.count >= 3 else {
            FileHandle.standardError.write(Data("usage: cairn-bench read-all DATA | ranges DATA SIZE SECONDS\n".utf8))
            exit(2)
        }
        if arguments[1] == "dicom-headers" {
            try dicomHeaders(directory: arguments[2], seconds: Double(arguments[3])!, verify: arguments.count < 5 || arguments[4] != "parse")
            return
        }
        let store = try BlobStore.open(at: arguments[2])
        switch arguments[1] {
        case "read-all":
            try readAll(store)
        case "ranges":
            try ranges(store, size: UInt64(arguments[3])!, seconds: Double(arguments[4])!,
                       aligned: arguments.count > 5 && arguments[5] == "aligned")
        case "audit-append":
            try auditAppend(store, batch: Int(arguments[3])!)
        default:
            exit(2)
        }
    }

    static func readAll(_ store: BlobStore) throws {
        let blobs = try store.list(dataset: nil)
        var bytes: UInt64 = 0
        var checksum: UInt8 = 0
        let start = Date()
        for blob in blobs {
            let reader = try store.reader(blob.record.digest)
            try reader.read(0..<reader.size) { chunk in
                bytes += UInt64(chunk.count)
                checksum ^= chunk.last ?? 0
            }
        }
        let seconds = Date().timeIntervalSince(start)
        emit(["blobs": blobs.count, "bytes": bytes, "seconds": seconds, "mb_per_s": Double(bytes) / seconds / 1e6,
              "xor": Int(checksum)])
    }

    static func ranges(_ store: BlobStore, size: UInt64, seconds: Double, aligned: Bool) throws {
        let blobs = try store.list(dataset: nil).filter { $0.record.codec != .raw && $0.record.size > size }
        guard !blobs.isEmpty else { throw StoreError.invalidArgument("no compressed blob larger than \(size) bytes") }
        var readers = try blobs.map { try store.reader($0.record.digest) }
        var rng = SystemRandomNumberGenerator()
        var latencies: [Double] = []
        var opens: [Double] = []
        var bytes: UInt64 = 0
        let start = Date()
        var count = 0
        while Date().timeIntervalSince(start) < seconds {
            let index = Int.random(in: 0..<readers.count, using: &rng)
            // A fresh reader per request, as a server handling unrelated requests would have.
            let open0 = DispatchTime.now().uptimeNanoseconds
            readers[index] = try store.reader(blobs[index].record.digest)
            let reader = readers[index]
            let t0 = DispatchTime.now().uptimeNanoseconds
            opens.append(Double(t0 - open0) / 1e3)
            var offset = UInt64.random(in: 0...(reader.size - size), using: &rng)
            if aligned { offset -= offset % size }
            try reader.read(offset..<offset + size) { bytes += UInt64($0.count) }
            latencies.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e3)
            count += 1
        }
        let elapsed = Date().timeIntervalSince(start)
        latencies.sort()
        opens.sort()
        emit(["reads": count, "seconds": elapsed, "reads_per_s": Double(count) / elapsed,
              "p50_us": latencies[latencies.count / 2], "p99_us": latencies[latencies.count * 99 / 100],
              "open_p50_us": opens[opens.count / 2],
              "blobs": blobs.count, "bytes": bytes])
    }

    /// Parses the header (everything but the pixel values) of every file in a folder, extracts the
    /// indexed attributes and runs the gate, round robin, for `seconds`, one thread: the per-file
    /// cost ingest pays to index an instance.
    /// The policy the generated corpus passes under (it declares these options).
    static let everyOption = DeidentificationPolicy(acceptedOptions: Set(DeidentificationOption.allCases))

    static func dicomHeaders(directory: String, seconds: Double, verify: Bool) throws {
        let parser = DicomParser()
        // Files the parser refuses (the truncated and malformed test files) are not headers to time.
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".dcm") }.sorted()
            .map { directory + "/" + $0 }.filter { (try? parser.parse(path: $0)) != nil }
        guard !files.isEmpty else { throw StoreError.invalidArgument("no readable .dcm files in \(directory)") }
        // The corpus's kept text, reviewed once (as `gate review --accept-file` does): the timed
        // gate then checks every value against the reviewed set, as ingest into a reviewed dataset does.
        var policy = everyOption
        if verify {
            for path in files {
                if case .identifiable(let findings) = DeidentificationGate.inspect(path: path, policy: policy).verdict {
                    policy.reviewedText.formUnion(findings.compactMap(\.unreviewed))
                }
            }
        }
        var latencies: [Double] = []
        let start = Date()
        var count = 0
        while Date().timeIntervalSince(start) < seconds {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let file = try parser.parse(path: files[count % files.count])
            _ = InstanceRecord(file: file, layout: PixelDataLayout(file: file))
            if verify { _ = DeidentificationGate.judge(file, policy: policy) }
            latencies.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e3)
            count += 1
        }
        let elapsed = Date().timeIntervalSince(start)
        latencies.sort()
        emit(["headers": count, "per_s": Double(count) / elapsed, "p50_us": latencies[latencies.count / 2],
              "p99_us": latencies[latencies.count * 99 / 100], "files": files.count])
    }

    /// What one batch write of the node's audit trail costs per record: a read event as the blob
    /// route records it, chained and inserted in one transaction per batch.
    static func auditAppend(_ store: BlobStore, batch: Int) throws {
        let event = AuditEvent(actor: "bench-job", action: "read", dataset: "bench",
                               digest: "sha256:" + String(repeating: "ab", count: 32), range: "1048576-1114111",
                               bytes: 65_536, status: 206)
        let start = Date()
        var records = 0
        while Date().timeIntervalSince(start) < 5 {
            try store.appendAudit(Array(repeating: event, count: batch))
            records += batch
        }
        let elapsed = Date().timeIntervalSince(start)
        emit(["records": records, "per_s": Double(records) / elapsed, "us_per_record": elapsed * 1e6 / Double(records)])
    }

    static func emit(_ object: [String: Any]) {
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }
}
