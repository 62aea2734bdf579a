import ArgumentParser
import CairnStore

struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List blobs, or one dataset's entries.")

    @OptionGroup var global: GlobalOptions

    @Option(help: "Only this dataset's entries, with their names and indexed DICOM attributes.")
    var dataset: String?

    func run() throws {
        let store = try global.openStore()
        if let dataset, !(try store.datasetExists(dataset)) {
            throw StoreError.invalidArgument("dataset '\(dataset)' does not exist")
        }
        for item in try store.list(dataset: dataset) {
            let record = item.record
            if global.json {
                var object: [String: Any] = ["digest": record.digest.description, "size": record.size,
                                             "stored_size": record.storedSize, "codec": record.codec.rawValue,
                                             "state": record.state.rawValue]
                if let name = item.name { object["name"] = name }
                if let i = item.instance {
                    let attributes: [String: Any?] = [
                        "subject": i.subject, "study_uid": i.studyUID, "series_uid": i.seriesUID, "sop_uid": i.sopInstanceUID,
                        "sop_class": i.sopClassUID, "modality": i.modality, "body_part": i.bodyPart,
                        "manufacturer": i.manufacturer, "sex": i.sex, "study_date": i.studyDate, "rows": i.rows,
                        "columns": i.columns, "frames": i.frames, "transfer_syntax": i.transferSyntax,
                        "pixel_data_offset": i.pixelDataOffset, "frame_offsets": i.frameOffsets.isEmpty ? nil : i.frameOffsets,
                    ]
                    object["dicom"] = attributes.compactMapValues { $0 }
                }
                Terminal.printJSON(object)
            } else {
                // Names and attributes come from uploaders and files: escaped, so a tab, a newline or
                // an ANSI escape in them cannot forge columns, lines or colours.
                print([record.digest.description, String(record.size), String(record.storedSize), record.codec.rawValue,
                       record.state.rawValue, Terminal.escaped(item.instance?.modality ?? ""),
                       Terminal.escaped(item.instance?.subject ?? ""), Terminal.escaped(item.name ?? "")]
                    .joined(separator: "\t"))
            }
        }
    }
}
