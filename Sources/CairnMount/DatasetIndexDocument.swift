import CairnStore
import Foundation

/// A dataset's `index.json`, in the shape the EUCAIM/CHAIMELEON reference node writes for its
/// jobs (chaimeleon-eu/dataset-service `index.schema.json`): an array of studies, each with
/// `studyId`, `studyName`, `subjectName`, `path` (`<subject>/<study>` from the dataset folder),
/// `series` (`folderName`, `tags`) and `url`. Cairn's differences are in the README.
struct StudyIndex {
    private struct SeriesKey: Hashable { var subject, study, series: String }
    private struct StudyKey: Hashable, Comparable {
        var subject, study: String
        static func < (a: StudyKey, b: StudyKey) -> Bool { (a.subject, a.study) < (b.subject, b.study) }
    }

    private var studyUIDs: [StudyKey: String] = [:]
    private var series: [StudyKey: [String: (tags: [String], instances: Int)]] = [:]

    mutating func add(subject: String, study: String, series folder: String, instance: DatasetMember.Instance) {
        let key = StudyKey(subject: subject, study: study)
        if let uid = instance.studyUID { studyUIDs[key] = uid }
        var entry = series[key, default: [:]][folder] ?? (tags: [], instances: 0)
        for tag in [instance.modality, instance.bodyPart].compactMap({ $0 }) where !entry.tags.contains(tag) { entry.tags.append(tag) }
        entry.instances += 1
        series[key, default: [:]][folder] = entry
    }

    struct Study: Encodable {
        var studyId: String
        var studyName: String
        var subjectName: String
        var path: String
        var series: [Series]
        var url: String
    }

    struct Series: Encodable {
        var folderName: String
        var tags: [String]
        /// Cairn's addition: how many instance files the folder holds.
        var instances: Int
    }

    func document() -> [UInt8] {
        let studies = series.keys.sorted().map { key -> Study in
            let uid = studyUIDs[key] ?? ""
            let folders = (series[key] ?? [:]).sorted { $0.key < $1.key }
                .map { Series(folderName: $0.key, tags: $0.value.tags, instances: $0.value.instances) }
            return Study(studyId: uid, studyName: "-", subjectName: key.subject, path: key.subject + "/" + key.study,
                         series: folders, url: Self.url(studyUID: uid, folder: key.study))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return Array((try? encoder.encode(studies)) ?? Data("[]".utf8))
    }

    /// A study's URI: `urn:oid:<StudyInstanceUID>` (a UID is an OID), else one naming its folder.
    static func url(studyUID: String, folder: String) -> String {
        let isOID = !studyUID.isEmpty && studyUID.utf8.allSatisfy { $0 == UInt8(ascii: ".") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
        return isOID ? "urn:oid:" + studyUID : "urn:cairn:study:" + folder
    }
}
