import CairnBlobs
import CairnStore
import Foundation

/// One file or folder of the mount.
public struct MountEntry: Sendable, Equatable {
    public enum Content: Sendable, Equatable {
        case directory(subdirectories: Int)
        /// A blob's original bytes.
        case blob(BlobDigest, BlobCodec)
        /// A blob `verify` found damaged or missing (its state): listed, but every open is EIO.
        case damaged(BlobDigest, state: String)
        /// The dataset's generated `index.json`.
        case indexDocument
    }

    public let inode: UInt64
    public let parent: UInt64
    public let name: String
    /// The dataset the entry belongs to ("" for the root).
    public let dataset: String
    public let content: Content
    public let size: UInt64
    /// Seconds since 1970: a blob's time of storing; a folder's newest file below it.
    public let modified: Int64

    public var isDirectory: Bool { if case .directory = content { true } else { false } }
}

/// An immutable picture of the mounted datasets as folders:
/// `/<dataset>/index.json`, `/<dataset>/<subject>/<study>/<series>/<instance>.dcm` and
/// `/<dataset>/files/<name>` for blobs that are not DICOM. A new picture is built whenever the
/// store's content generation moves; readers hold whichever picture they started with.
public final class MountTree: Sendable {
    public static let rootInode: UInt64 = 1
    public static let indexName = "index.json"
    public static let filesFolder = "files"
    /// Names a subject folder may not take as they are.
    static let reservedNames: Set<String> = [indexName, filesFolder]
    static let missingSubject = "unknown-subject"

    /// The folder name a subject pseudonym gets (the rule `MountNames` documents).
    static func subjectFolderName(_ subject: String?) -> String {
        MountNames.component(subject, placeholder: missingSubject, reserved: reservedNames)
    }

    /// Each dataset's content generation the picture was read at.
    public let generations: [String: Int64]
    /// Sum of the files' sizes (statfs).
    public let totalBytes: UInt64
    private let entries: [UInt64: MountEntry]
    private let childList: [UInt64: [UInt64]]
    private let childNames: [UInt64: [String: UInt64]]
    private let documents: [UInt64: [UInt8]]

    init(generations: [String: Int64], entries: [UInt64: MountEntry], childList: [UInt64: [UInt64]],
         childNames: [UInt64: [String: UInt64]], documents: [UInt64: [UInt8]], totalBytes: UInt64) {
        self.generations = generations
        self.totalBytes = totalBytes
        self.entries = entries
        self.childList = childList
        self.childNames = childNames
        self.documents = documents
    }

    public var count: Int { entries.count }

    public func entry(_ inode: UInt64) -> MountEntry? { entries[inode] }

    public func lookup(parent: UInt64, name: String) -> MountEntry? {
        childNames[parent]?[name].flatMap { entries[$0] }
    }

    /// A folder's entries, in name order.
    public func children(of inode: UInt64) -> [MountEntry] {
        (childList[inode] ?? []).compactMap { entries[$0] }
    }

    /// An entry and every entry below it (folders first).
    public func subtree(_ inode: UInt64) -> [MountEntry] {
        var out: [MountEntry] = []
        var pending = [inode]
        while let next = pending.popLast() {
            guard let entry = entries[next] else { continue }
            out.append(entry)
            pending.append(contentsOf: childList[next] ?? [])
        }
        return out
    }

    /// The bytes of a generated file (`index.json`).
    public func document(_ inode: UInt64) -> [UInt8]? { documents[inode] }

    /// Every entry (tests, diffs between pictures).
    public var allEntries: Dictionary<UInt64, MountEntry>.Values { entries.values }

    /// The path of an entry below the root, e.g. `ds/subject/study/series/x.dcm`.
    public func path(of inode: UInt64) -> String? {
        var parts: [String] = []
        var current = inode
        while current != Self.rootInode {
            guard let entry = entries[current] else { return nil }
            parts.append(entry.name)
            current = entry.parent
        }
        return parts.reversed().joined(separator: "/")
    }

    /// A dataset as the mount shows it.
    public struct Dataset: Sendable {
        public var id: String
        public var createdAt: Date
        public var members: [DatasetMember]
        public var generation: Int64

        public init(id: String, createdAt: Date, members: [DatasetMember], generation: Int64 = 0) {
            self.id = id
            self.createdAt = createdAt
            self.members = members
            self.generation = generation
        }
    }

    /// The empty picture: what a mount shows when it cannot tell what the store holds.
    public static let empty = MountTree.build([])

    public static func build(_ datasets: [Dataset]) -> MountTree {
        var builder = MountTreeBuilder()
        for dataset in datasets.sorted(by: { $0.id < $1.id }) { builder.add(dataset) }
        return builder.finish(generations: Dictionary(datasets.map { ($0.id, $0.generation) }, uniquingKeysWith: max))
    }
}

/// Assembles a `MountTree`: folders on first use, names unique per folder, inode numbers from
/// the parent's number and the name (stable across rebuilds and mounts; on a hash collision the
/// next free number).
struct MountTreeBuilder {
    private var entries: [UInt64: MountEntry] = [:]
    private var childList: [UInt64: [UInt64]] = [:]
    private var childNames: [UInt64: [String: UInt64]] = [:]
    private var documents: [UInt64: [UInt8]] = [:]
    private var modified: [UInt64: Int64] = [:]
    /// The index value each folder was named from: a second value cleaned to the same name gets
    /// a longer suffix instead of sharing the folder.
    private var folderValues: [UInt64: String] = [:]
    private var totalBytes: UInt64 = 0

    init() {
        entries[MountTree.rootInode] = MountEntry(inode: MountTree.rootInode, parent: MountTree.rootInode, name: "", dataset: "",
                                                  content: .directory(subdirectories: 0), size: 0, modified: 0)
    }

    mutating func add(_ dataset: MountTree.Dataset) {
        let datasetTime = MountNames.seconds(dataset.createdAt)
        let top = folder(named: dataset.id, value: dataset.id, in: MountTree.rootInode, dataset: dataset.id, time: datasetTime)
        var studies = StudyIndex()
        reserve(dataset.members.count)
        // Earliest stored first: when two blobs want one name, the one already there keeps it
        // (members come in digest order; ties keep it).
        let order = dataset.members.indices.sorted {
            (dataset.members[$0].storedAt, $0) < (dataset.members[$1].storedAt, $1)
        }
        for position in order {
            let member = dataset.members[position]
            let time = MountNames.seconds(member.storedAt)
            guard let instance = member.instance else {
                let files = folder(named: MountTree.filesFolder, value: "\u{0}files", in: top, dataset: dataset.id, time: time)
                addFile(MountNames.component(member.name, placeholder: member.digest.hex), in: files, member: member, dataset: dataset.id)
                continue
            }
            let subjectName = MountTree.subjectFolderName(instance.subject)
            let studyName = MountNames.component(instance.studyUID, placeholder: "unknown-study")
            let seriesName = MountNames.component(instance.seriesUID, placeholder: "unknown-series")
            let subject = namedFolder(subjectName, value: instance.subject ?? "", in: top, dataset: dataset.id, time: time)
            let study = namedFolder(studyName, value: instance.studyUID ?? "", in: subject.inode, dataset: dataset.id, time: time)
            let series = namedFolder(seriesName, value: instance.seriesUID ?? "", in: study.inode, dataset: dataset.id, time: time)
            let instanceName = MountNames.component(instance.sopInstanceUID, placeholder: member.digest.hex) + ".dcm"
            addFile(instanceName, in: series.inode, member: member, dataset: dataset.id)
            studies.add(subject: subject.name, study: study.name, series: series.name, instance: instance)
        }
        let document = studies.document()
        let inode = place(MountTree.indexName, in: top)
        entries[inode] = MountEntry(inode: inode, parent: top, name: MountTree.indexName, dataset: dataset.id, content: .indexDocument,
                                    size: UInt64(document.count), modified: max(datasetTime, modified[top] ?? 0))
        documents[inode] = document
    }

    /// Room for `count` more files and their folders, so the tables are not rehashed as they grow.
    private mutating func reserve(_ count: Int) {
        entries.reserveCapacity(entries.count + count + count / 8)
        childNames.reserveCapacity(childNames.count + count / 8)
        childList.reserveCapacity(childList.count + count / 8)
    }

    private mutating func addFile(_ preferred: String, in parent: UInt64, member: DatasetMember, dataset: String) {
        var name = preferred
        if childNames[parent]?[name] != nil {
            func tagged(_ tag: Substring) -> String {
                preferred.hasSuffix(".dcm") ? String(preferred.dropLast(4)) + "~" + tag + ".dcm" : preferred + "~" + tag
            }
            name = tagged(member.digest.hex.prefix(12))
            if childNames[parent]?[name] != nil { name = tagged(member.digest.hex[...]) }
        }
        let inode = place(name, in: parent)
        let time = MountNames.seconds(member.storedAt)
        let content: MountEntry.Content = member.state == "ok" ? .blob(member.digest, member.codec) : .damaged(member.digest, state: member.state)
        entries[inode] = MountEntry(inode: inode, parent: parent, name: name, dataset: dataset, content: content,
                                    size: member.size, modified: time)
        totalBytes &+= member.size
        touch(parent, time: time)
    }

    private mutating func folder(named preferred: String, value: String, in parent: UInt64, dataset: String, time: Int64) -> UInt64 {
        namedFolder(preferred, value: value, in: parent, dataset: dataset, time: time).inode
    }

    /// The folder for `value` in `parent` (made on first use), and the name it got.
    private mutating func namedFolder(_ preferred: String, value: String, in parent: UInt64, dataset: String,
                                      time: Int64) -> (inode: UInt64, name: String) {
        var name = preferred
        if let existing = childNames[parent]?[name] {
            if folderValues[existing] == value { return (existing, name) }
            // Another value cleaned to this name: the whole hash tells them apart.
            name = preferred + "~" + MountNames.shortHash(value, hexDigits: 64)
            if let again = childNames[parent]?[name] { return (again, name) }
        }
        let inode = place(name, in: parent)
        folderValues[inode] = value
        entries[inode] = MountEntry(inode: inode, parent: parent, name: name, dataset: dataset,
                                    content: .directory(subdirectories: 0), size: 0, modified: time)
        touch(parent, time: time)
        return (inode, name)
    }

    /// Reserves an inode for `name` in `parent` and links it there.
    private mutating func place(_ name: String, in parent: UInt64) -> UInt64 {
        var inode = MountNames.inode(parent: parent, name: name)
        while entries[inode] != nil || inode == MountTree.rootInode || inode == 0 { inode &+= 1 }
        childList[parent, default: []].append(inode)
        childNames[parent, default: [:]][name] = inode
        return inode
    }

    private mutating func touch(_ folder: UInt64, time: Int64) {
        var current = folder
        while true {
            // A folder already this new has ancestors at least as new.
            if let known = modified[current], known >= time { return }
            modified[current] = time
            if current == MountTree.rootInode { return }
            guard let parent = entries[current]?.parent else { return }
            current = parent
        }
    }

    /// Sorts each folder and settles folder attributes, in place (a copy of the tables would
    /// retain every entry once more).
    mutating func finish(generations: [String: Int64]) -> MountTree {
        for (folder, children) in childList {
            let named = children.map { (name: entries[$0]?.name ?? "", inode: $0, isDirectory: entries[$0]?.isDirectory == true) }
            childList[folder] = named.sorted { $0.name < $1.name }.map(\.inode)
            guard let entry = entries[folder] else { continue }
            let subdirectories = named.filter(\.isDirectory).count
            entries[folder] = MountEntry(inode: folder, parent: entry.parent, name: entry.name, dataset: entry.dataset,
                                         content: .directory(subdirectories: subdirectories), size: 0,
                                         modified: max(entry.modified, modified[folder] ?? entry.modified))
        }
        return MountTree(generations: generations, entries: entries, childList: childList, childNames: childNames, documents: documents,
                         totalBytes: totalBytes)
    }
}
