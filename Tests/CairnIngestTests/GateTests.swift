import CairnDICOM
import Testing
@testable import CairnIngest
@testable import CairnStore

/// The gate fails closed on every prefix of an identifiable file: cut at any byte, the file is
/// refused even by a dataset that allows files that are not DICOM (bar the preamble and the magic,
/// which hold nothing of the instance). The same file de-identified and whole goes in.
@Suite struct GateTests {
    @Test func everyPrefixOfAnIdentifiableFileIsRefused() {
        let named = multiFrameImage(rows: 8, columns: 8, frames: 2, patientName: "Doe^Jane", identityRemoved: false)
        for length in 0...named.count {
            let prefix = Array(named[0..<length])
            let verdict = DeidentificationGate.inspect(bytes: prefix).verdict
            #expect(verdict != .clean, "prefix of \(length) bytes")
            // Up to "DICM" a prefix holds only the zero preamble and part of the magic: nothing of the instance.
            if length > 132 {
                #expect(verdict.refusal(allowNonDicom: true) != nil, "prefix of \(length) bytes: \(verdict)")
            }
            #expect(verdict.refusal(allowNonDicom: false) != nil, "prefix of \(length) bytes")
        }
    }

    @Test func deidentifiedWholeFilesAreClean() {
        let clean = multiFrameImage(rows: 8, columns: 8, frames: 2, patientName: "ANON", identityRemoved: true)
        #expect(DeidentificationGate.inspect(bytes: clean).verdict == .clean)
        // Cut inside the pixel data of a file that declares identity removed: still incomplete.
        #expect(DeidentificationGate.inspect(bytes: Array(clean.dropLast(64))).verdict != .clean)
    }

    /// What nothing that reads DICOM shows cannot be judged: the preamble must be zero (or a TIFF
    /// header and zero), and bytes after the last frame zero padding (the second black-box review
    /// stored a name in each).
    @Test func theBytesNothingShowsMustBeZero() {
        let clean = multiFrameImage(rows: 8, columns: 8, frames: 2, patientName: "ANON", identityRemoved: true)
        var named = clean
        named.replaceSubrange(0..<8, with: Array("Doe^John".utf8))
        guard case .uncheckable(let why) = DeidentificationGate.inspect(bytes: named).verdict else {
            Issue.record("a name in the preamble was not refused")
            return
        }
        #expect(why.contains("preamble") && !why.contains("Doe"))
        var tiff = clean
        tiff.replaceSubrange(0..<8, with: [0x49, 0x49, 0x2A, 0x00, 0x08, 0x00, 0x00, 0x00])
        #expect(DeidentificationGate.inspect(bytes: tiff).verdict == .clean)
        func padded(_ tail: [UInt8]) -> [UInt8] {
            let pixelBytes = 8 * 8 * 2 * 2
            let n = pixelBytes + tail.count
            return Array(clean.dropLast(pixelBytes + 4)) + [UInt8(n & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n >> 16 & 0xFF), UInt8(n >> 24)]
                + Array(clean.suffix(pixelBytes)) + tail
        }
        #expect(DeidentificationGate.inspect(bytes: padded([0, 0, 0, 0])).verdict == .clean)
        guard case .uncheckable(let after) = DeidentificationGate.inspect(bytes: padded(Array("Doe^John".utf8))).verdict else {
            Issue.record("a name after the last frame was not refused")
            return
        }
        #expect(after.contains("after the last frame"))
    }

    @Test func leadingJunkAndArchivesAreUncheckable() {
        let named = multiFrameImage(rows: 4, columns: 4, frames: 1, patientName: "Doe^Jane", identityRemoved: false)
        guard case .uncheckable = DeidentificationGate.inspect(bytes: [0x01, 0x02, 0x03] + named).verdict else {
            Issue.record("leading junk was not refused as uncheckable")
            return
        }
        guard case .uncheckable(let why) = DeidentificationGate.inspect(bytes: [0x1F, 0x8B, 8, 0] + named).verdict else {
            Issue.record("a gzip header was not refused as uncheckable")
            return
        }
        #expect(why.contains("gzip"))
        #expect(DeidentificationGate.inspect(bytes: Array("plain text, no DICOM".utf8)).verdict.refusal(allowNonDicom: true) == nil)
    }
}
