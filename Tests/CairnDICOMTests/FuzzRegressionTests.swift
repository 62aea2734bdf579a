import Foundation
import Testing
import CairnDICOM

/// Replays every input kept in Regressions/ (fuzzer findings and hand-made hostile files): each
/// must parse or fail with a DicomError, and whatever parses must render, within a time bound.
@Suite struct FuzzRegressionTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Regressions")

    static var inputs: [URL] {
        ((try? FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)) ?? [])
            .filter { !$0.lastPathComponent.hasPrefix(".") }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    @Test func regressionInputsExist() {
        #expect(!Self.inputs.isEmpty, "Tests/CairnDICOMTests/Regressions holds the fuzz corpus of known-hostile inputs")
    }

    @Test(arguments: FuzzRegressionTests.inputs)
    func replays(_ input: URL) throws {
        let bytes = try [UInt8](Data(contentsOf: input))
        let start = Date()
        do {
            let file = try DicomParser().parse(bytes: bytes)
            _ = DicomJSON.encode(file.dataSet)
            _ = DicomTextDump.render(file)
            _ = PixelDataLayout(file: file)
        } catch is DicomError {
            // A clear refusal is a correct outcome.
        }
        #expect(Date().timeIntervalSince(start) < 2, "\(input.lastPathComponent) took too long")
    }
}
