import CairnBlobs
import FuzzSupport

/// Any bytes as a blob file (damaged frames, seek tables, pixel frame headers): decoding throws or
/// returns bytes whose every frame passed its checksum, never crashes or reads out of bounds. A
/// decoded result is decoded again identically (no state leaks between calls).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = fuzzBytes(data, count)
    guard let decoder = try? FrameDecoder() else { fatalError("no decoder") }
    guard let first = try? FramedBlob.decode(bytes, decoder: decoder) else { return 0 }
    guard let second = try? FramedBlob.decode(bytes, decoder: decoder), second == first else {
        fatalError("the same blob decoded twice differently")
    }
    return 0
}

runFuzzer { fuzzOne($0, $1) }
