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
