import CairnDICOM
import Foundation
import Testing
@testable import CairnIngest
@testable import CairnStore

/// A native multi-frame image (explicit VR little endian) written byte by byte.
func multiFrameImage(rows: Int, columns: Int, frames: Int, patientName: String, identityRemoved: Bool) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: 128) + Array("DICM".utf8)
    func element(_ group: UInt16, _ element: UInt16, _ vr: String, _ value: [UInt8]) {
        var value = value
        if value.count % 2 == 1 { value.append(vr == "UI" ? 0 : 0x20) }
        out += [UInt8(group & 0xFF), UInt8(group >> 8), UInt8(element & 0xFF), UInt8(element >> 8)] + Array(vr.utf8)
        if ["OB", "OW", "SQ", "UN", "UT"].contains(vr) {
            let n = UInt32(value.count)
            out += [0, 0, UInt8(n & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n >> 16 & 0xFF), UInt8(n >> 24)]
        } else {
            out += [UInt8(value.count & 0xFF), UInt8(value.count >> 8)]
        }
        out += value
    }
    func text(_ g: UInt16, _ e: UInt16, _ vr: String, _ s: String) { element(g, e, vr, Array(s.utf8)) }
    func us(_ g: UInt16, _ e: UInt16, _ v: Int) { element(g, e, "US", [UInt8(v & 0xFF), UInt8(v >> 8)]) }
    text(0x0002, 0x0010, "UI", "1.2.840.10008.1.2.1")
    text(0x0008, 0x0016, "UI", "1.2.840.10008.5.1.4.1.1.7.3")
    text(0x0008, 0x0018, "UI", "1.2.3.4.5.\(frames)")
    text(0x0008, 0x0060, "CS", "OT")
    text(0x0010, 0x0010, "PN", patientName)
    text(0x0010, 0x0020, "LO", "SUBJ-1")
    if !identityRemoved { text(0x0010, 0x0030, "DA", "19700101") }
    if identityRemoved { text(0x0012, 0x0062, "CS", "YES") }
    text(0x0020, 0x000D, "UI", "1.2.3.4")
    text(0x0020, 0x000E, "UI", "1.2.3.4.1")
    us(0x0028, 0x0002, 1)
    text(0x0028, 0x0004, "CS", "MONOCHROME2")
    text(0x0028, 0x0008, "IS", String(frames))
    us(0x0028, 0x0010, rows)
    us(0x0028, 0x0011, columns)
    us(0x0028, 0x0100, 16)
    us(0x0028, 0x0101, 12)
    us(0x0028, 0x0102, 11)
    us(0x0028, 0x0103, 0)
    // A secondary capture must say whether text is burned in.
    if identityRemoved { text(0x0028, 0x0301, "CS", "NO") }
    var pixels = [UInt8](repeating: 0, count: rows * columns * 2 * frames)
    for i in stride(from: 0, to: pixels.count, by: 2) {
        let v = UInt16((i / 2) % 4000 + (i / (rows * columns * 2)) * 7)
        pixels[i] = UInt8(v & 0xFF)
        pixels[i + 1] = UInt8(v >> 8)
    }
    element(0x7FE0, 0x0010, "OW", pixels)
    return out
}

@Suite struct DicomFramingTests {
    @Test func headerAndSingleFrameReadsDecompressOnlyWhatTheyNeed() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-framing-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = try BlobStore.initialize(at: root)
        let bytes = multiFrameImage(rows: 128, columns: 128, frames: 12, patientName: "ANON", identityRemoved: true)
        let path = root + "/mf.dcm"
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        let inspection = DicomInspection(path: path, gate: .closed)
        let instance = try #require(inspection.record)
        #expect(inspection.refusal(under: .closed) == nil)
        #expect(instance.frameOffsets.count == 12)
        let pixelStart = try #require(instance.pixelDataOffset)
        #expect(instance.frameOffsets.first == pixelStart)

        let staged = try store.stage(fileAt: path, options: .init(codec: .zstd), cutPoints: inspection.cutPoints)
        staged.instance = inspection.record
        let digest = try store.commit(staged).blob.digest

        // The header: everything before Pixel Data decodes from one small frame.
        let header = try store.reader(digest)
        #expect(try header.bytes(0..<pixelStart) == Array(bytes[0..<Int(pixelStart)]))
        #expect(header.framesDecompressed == 1)
        #expect(header.bytesDecompressed == pixelStart)

        // One image frame (32 KiB) decodes exactly that frame.
        let frameSize = UInt64(128 * 128 * 2)
        let frame7 = try store.reader(digest)
        let start = instance.frameOffsets[7]
        #expect(try frame7.bytes(start..<start + frameSize) == Array(bytes[Int(start)..<Int(start + frameSize)]))
        #expect(frame7.framesDecompressed == 1)
        #expect(frame7.bytesDecompressed == frameSize)

        let rows = try store.instances(in: BlobStore.defaultDataset)
        #expect(rows.count == 1)
        #expect(rows[0].record.frameOffsets == instance.frameOffsets)
        #expect(rows[0].record.subject == "SUBJ-1")
        #expect(rows[0].record.frames == 12)
    }

    @Test func theGateRefusesIdentifiedFilesAndNamesTheAttributes() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-gate-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = try BlobStore.initialize(at: root)
        let path = root + "/named.dcm"
        _ = FileManager.default.createFile(atPath: path, contents: Data(
            multiFrameImage(rows: 8, columns: 8, frames: 1, patientName: "Doe^Jane", identityRemoved: false)))
        let inspection = DicomInspection(path: path, gate: .closed)
        let refusal = inspection.refusal(under: .closed)
        #expect(refusal?.contains("PatientName") == true)
        #expect(refusal?.contains("PatientBirthDate") == true)

        let summary = IngestRunner(store: store, options: .init(), dataset: BlobStore.defaultDataset, jobs: 2)
            .run([FoundFile(path: path, name: "named.dcm", size: 0)]) { _, _ in }
        #expect(summary.refused == 1 && summary.ingested == 0)
        #expect(try store.stats().blobs == 0)
        #expect(try FileSystem.list(store.tmpRoot).isEmpty)

        try store.createDataset(id: "open", title: nil, deidPolicy: .accept)
        let accepted = IngestRunner(store: store, options: .init(), dataset: "open", jobs: 1)
            .run([FoundFile(path: path, name: "named.dcm", size: 0)]) { _, _ in }
        #expect(accepted.ingested == 1 && accepted.instances == 1)
    }
}
