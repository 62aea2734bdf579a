import CairnDICOM
import FuzzSupport
import Glibc

/// The de-identification gate must fail closed. For every input the gate reads from a file (as
/// ingest does, through the parser's windowed file reader), a `clean` verdict must be one the
/// parser confirms independently from the bytes in memory: they parse to their end, in
/// ascending tag order, and the Basic Profile verifier finds nothing in them. Anything else the gate let through is a crash
/// (a finding). Seed with identifiable files (Tools/fuzz/seeds/gate) so mutations start from
/// files that must be refused.
let scratchPath = "/tmp/cairn-fuzz-gate-\(getpid()).dcm"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: count))
    let fd = open(scratchPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else { fatalError("cannot write \(scratchPath)") }
    let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    close(fd)
    guard written == count else { fatalError("short write to \(scratchPath)") }
    var limits = ParseLimits()
    limits.maxInflated = 16 << 20
    let parser = DicomParser(limits: limits)
    let verdict = DeidentificationGate.inspect(path: scratchPath, parser: parser).verdict
    guard verdict == .clean else { return 0 }
    // The oracle: the in-memory parse must read the whole input and find no identifier.
    let file: DicomFile
    do { file = try parser.parse(bytes: bytes) } catch {
        fatalError("gate accepted an input the parser cannot read to its end: \(error)")
    }
    guard file.deflateComplete else { fatalError("gate accepted a cut deflated data set") }
    let findings = DeidentificationVerifier(policy: .strict).findings(file, bulk: { offset, length in
        guard offset >= 0, length >= 0, offset <= bytes.count - length else { return nil }
        return Array(bytes[offset..<(offset + length)])
    })
    guard findings.isEmpty else { fatalError("gate accepted an input the verifier refuses: \(findings)") }
    var previous: DicomTag?
    for element in file.dataSet.elements {
        if let previous, !(previous < element.tag) { fatalError("gate accepted elements out of order at \(element.tag)") }
        previous = element.tag
    }
    return 0
}

runFuzzer { fuzzOne($0, $1) }
