import ArgumentParser
import CairnDICOM

struct DicomCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dicom", abstract: "Inspect DICOM files.", subcommands: [Dump.self])

    struct Dump: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a file's data set: dcmdump-like text, or with --json the DICOM JSON model (PS3.18 F.2).",
            discussion: "Bulk data (pixel data and OB/OD/OF/OL/OV/OW/UN values) is left out of the JSON model.")

        @OptionGroup var global: GlobalOptions

        @Argument(help: "A DICOM file.")
        var file: String

        func run() throws {
            let parsed: DicomFile
            do {
                parsed = try DicomParser().parse(path: file)
            } catch let error as DicomError {
                throw CommandFailure(status: 2, message: "\(file): \(error)")
            }
            if global.json {
                print(DicomJSON.encode(parsed.dataSet))
            } else {
                print(DicomTextDump.render(parsed), terminator: "")
            }
        }
    }
}
