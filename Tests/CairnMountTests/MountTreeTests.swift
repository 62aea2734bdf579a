import CairnStore
import Foundation
import Testing
@testable import CairnMount

@Suite struct MountTreeTests {
    static func digest(_ n: Int) -> BlobDigest {
        BlobDigest(hex: String(repeating: "0", count: 60) + String(format: "%04x", n))!
    }

    static func instance(_ n: Int, subject: String?, study: String?, series: String?, sop: String?, at seconds: Double = 1_000) -> DatasetMember {
        DatasetMember(digest: digest(n), name: nil, size: UInt64(100 + n), storedAt: Date(timeIntervalSince1970: seconds),
                      instance: .init(subject: subject, studyUID: study, seriesUID: series, sopInstanceUID: sop,
                                      modality: "CT", bodyPart: "CHEST", studyDate: "20200101"))
    }

    /// The entry at `path` below the root.
    static func find(_ tree: MountTree, _ path: String) -> MountEntry? {
        var current = tree.entry(MountTree.rootInode)
        for part in path.split(separator: "/") {
            guard let folder = current else { return nil }
            current = tree.lookup(parent: folder.inode, name: String(part))
        }
        return current
    }

    @Test func layoutFollowsSubjectStudySeries() throws {
        let members = [
            Self.instance(1, subject: "P1", study: "1.2.3", series: "1.2.3.4", sop: "1.2.3.4.5"),
            Self.instance(2, subject: "P1", study: "1.2.3", series: "1.2.3.4", sop: "1.2.3.4.6"),
            DatasetMember(digest: Self.digest(3), name: "notes.txt", size: 7, storedAt: Date(timeIntervalSince1970: 2_000), instance: nil),
        ]
        let tree = MountTree.build([.init(id: "ds", createdAt: Date(timeIntervalSince1970: 10), members: members)])
        let paths = Set(tree.allEntries.compactMap { tree.path(of: $0.inode) })
        #expect(paths.contains("ds/P1/1.2.3/1.2.3.4/1.2.3.4.5.dcm"))
        #expect(paths.contains("ds/P1/1.2.3/1.2.3.4/1.2.3.4.6.dcm"))
        #expect(paths.contains("ds/files/notes.txt"))
        #expect(paths.contains("ds/index.json"))
        let series = try #require(Self.find(tree, "ds/P1/1.2.3/1.2.3.4"))
        #expect(tree.children(of: series.inode).map(\.name) == ["1.2.3.4.5.dcm", "1.2.3.4.6.dcm"])
        #expect(tree.entry(MountTree.rootInode)?.modified == 2_000)
        let document = try #require(Self.find(tree, "ds/index.json"))
        let json = try JSONSerialization.jsonObject(with: Data(try #require(tree.document(document.inode)))) as? [[String: Any]]
        let study = try #require(json?.first)
        #expect(study["studyId"] as? String == "1.2.3")
        #expect(study["subjectName"] as? String == "P1")
        #expect(study["path"] as? String == "P1/1.2.3")
        #expect(study["url"] as? String == "urn:oid:1.2.3")
        let seriesList = try #require(study["series"] as? [[String: Any]])
        #expect(seriesList.first?["folderName"] as? String == "1.2.3.4")
        #expect(seriesList.first?["tags"] as? [String] == ["CT", "CHEST"])
        #expect(seriesList.first?["instances"] as? Int == 2)
    }

    @Test func namesAreSafeUniqueAndStable() throws {
        let members = [
            Self.instance(1, subject: "../etc", study: "1.2", series: "1.3", sop: "1.4"),
            Self.instance(2, subject: "__etc", study: "1.2", series: "1.3", sop: "1.4"),
            Self.instance(3, subject: "files", study: nil, series: nil, sop: nil),
            Self.instance(4, subject: nil, study: "1.2", series: "1.3", sop: "1.4"),
            // A real subject named like the placeholder for a missing one gets a suffix.
            Self.instance(7, subject: "unknown-subject", study: "1.2", series: "1.3", sop: "1.4"),
            // A subject that a shell would read as an option (`rm -rf *` in the dataset's folder).
            Self.instance(8, subject: "-rf", study: "1.2", series: "1.3", sop: "1.4"),
            // The same SOP Instance UID stored twice (a re-sent, changed file): the earlier keeps the name.
            Self.instance(5, subject: "P", study: "1.2", series: "1.3", sop: "9.9", at: 50),
            Self.instance(6, subject: "P", study: "1.2", series: "1.3", sop: "9.9", at: 40),
        ]
        let tree = MountTree.build([.init(id: "ds", createdAt: Date(), members: members)])
        let paths = tree.allEntries.compactMap { tree.path(of: $0.inode) }
        #expect(Set(paths).count == paths.count)
        for path in paths {
            for part in path.split(separator: "/") {
                #expect(part != "." && part != ".." && !part.hasPrefix(".") && !part.hasPrefix("-"), "unsafe component in \(path)")
            }
        }
        let top = try #require(Self.find(tree, "ds"))
        let subjects = tree.children(of: top.inode).map(\.name)
        #expect(subjects.contains("files") == false, "a subject called files must not take the files folder's name: \(subjects)")
        #expect(subjects.contains("__etc") && subjects.contains { $0.hasPrefix("_._etc~") })
        #expect(subjects.contains("unknown-subject") && subjects.contains { $0.hasPrefix("unknown-subject~") })
        #expect(!subjects.contains("-rf") && subjects.contains { $0.hasPrefix("_rf~") })
        let seriesFolder = try #require(Self.find(tree, "ds/P/1.2/1.3"))
        let names = tree.children(of: seriesFolder.inode).map(\.name)
        #expect(names.count == 2 && names.contains("9.9.dcm"))
        #expect(tree.lookup(parent: seriesFolder.inode, name: "9.9.dcm")?.content == .blob(Self.digest(6), .zstd))

        // Inodes and names do not depend on the other members.
        let smaller = MountTree.build([.init(id: "ds", createdAt: Date(), members: members.filter { $0.digest == Self.digest(5) })])
        let lone = try #require(Self.find(smaller, "ds/P/1.2/1.3"))
        #expect(lone.inode == seriesFolder.inode)
    }
}
