import CairnDICOM
import FuzzSupport

/// Every input must either parse or fail with a DicomError: no crash, no hang, bounded memory.
/// Whatever parses must also survive the JSON model and the text dump, which decode every value.
/// The verifier's other branches (safe private attributes, kept values, the pseudonym pattern).
let everyOption = DeidentificationPolicy(acceptedOptions: Set(DeidentificationOption.allCases), pseudonymPattern: "[A-Z]+-[0-9]+",
                                         allowEmbeddedDocuments: true, allowUnstatedBurnedInAnnotation: true)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: count))
    var limits = ParseLimits()
    limits.maxInflated = 16 << 20
    if let file = try? DicomParser(limits: limits).parse(bytes: bytes) {
        _ = DicomJSON.encode(file.dataSet)
        _ = DicomTextDump.render(file)
        _ = PixelDataLayout(file: file)
        _ = DeidentificationVerifier(policy: .strict).findings(file)
        _ = DeidentificationVerifier(policy: everyOption).findings(file)
    }
    return 0
}

runFuzzer { fuzzOne($0, $1) }
