import CairnFoundation
import CairnManifest
import CairnSearch
import Foundation
import GRDB
import Synchronization

/// One row of the `facets` table: a (subject, study, modality, body part, manufacturer, sex)
/// combination within one dataset, with how many entries have it. '' stands for absent.
struct Facet: Sendable {
    /// The entry attributes a facet is made of, in `values` order (as entry keys for intake).
    static let attributes: [StaticString] = ["subject", "study_uid", "modality", "body_part", "manufacturer", "sex"]
    static let columns = attributes.map { "\($0)" }
    var id: Int64
    var datasetKey: Int64
    /// In `columns` order.
    var values: [String]
    var instances: Int64
}

/// The count query's working set: every facet of every held dataset as small integer codes, in
/// memory. A count is one pass over these rows with a bit per subject and study seen, a few
/// milliseconds for a million facets, where SQLite's `count(DISTINCT …)` over indexed facets took
/// 155 ms p95 at 600,000. Loaded from `facets` on first use and kept in step by intake after each
/// commit, under the index's writer (so loads and updates are ordered like commits). Subject and
/// study codes of removed facets are only reclaimed by a reload (the next start).
final class FacetCounts: Sendable {
    private struct CodedFacet {
        var dataset: Int32
        var subject: Int32
        var study: Int32
        /// Modality, sex, body part, manufacturer codes, in `Criterion` order.
        var attributes: (Int32, Int32, Int32, Int32)
        var instances: Int64
    }

    /// The instance criteria of a count query, as coded attributes.
    enum Criterion: Int, CaseIterable {
        case modality, sex, bodyPart, manufacturer
        var key: String { ["modality", "sex", "body_part", "manufacturer"][rawValue] }
        /// Where the criterion's value sits in `Facet.values` (looked up once, not per facet loaded).
        var column: Int { Self.columns[rawValue] }
        private static let columns = allCases.map { Facet.columns.firstIndex(of: $0.key)! }
    }

    struct HeldDataset: Sendable {
        var node: String
        var dataset: String
        var cancerType: String?
        var title: String?
        var description: String?
        /// The provider made it searchable (federated search counts nothing else).
        var searchable = false
        var diagnosis: String?
    }

    private struct State {
        var datasets: [HeldDataset] = []
        var datasetIndex: [Int64: Int32] = [:]
        var rows: [CodedFacet] = []
        var facetIDs: [Int64] = []
        var rowOfFacet: [Int64: Int] = [:]
        var subjectCodes: [SubjectKey: Int32] = [:]
        var studyCodes: [SubjectKey: Int32] = [:]
        var attributeCodes: [[String: Int32]] = Array(repeating: [:], count: Criterion.allCases.count)

        struct SubjectKey: Hashable {
            var dataset: Int32
            var value: String
        }

        mutating func datasetCode(_ key: Int64, _ held: HeldDataset) -> Int32 {
            if let code = datasetIndex[key] {
                datasets[Int(code)] = held
                return code
            }
            datasets.append(held)
            datasetIndex[key] = Int32(datasets.count - 1)
            return Int32(datasets.count - 1)
        }

        /// -1 for '' (absent, never counted).
        static func code(_ value: String, in codes: inout [SubjectKey: Int32], dataset: Int32) -> Int32 {
            guard !value.isEmpty else { return -1 }
            let key = SubjectKey(dataset: dataset, value: value)
            if let code = codes[key] { return code }
            let code = Int32(codes.count)
            codes[key] = code
            return code
        }

        mutating func attributeCode(_ criterion: Criterion, _ value: String) -> Int32 {
            if let code = attributeCodes[criterion.rawValue][value] { return code }
            let code = Int32(attributeCodes[criterion.rawValue].count)
            attributeCodes[criterion.rawValue][value] = code
            return code
        }

        mutating func upsert(_ facet: Facet) {
            guard let dataset = datasetIndex[facet.datasetKey] else { return }
            guard facet.instances > 0 else { remove(facet.id); return }
            let coded = CodedFacet(
                dataset: dataset,
                subject: Self.code(facet.values[0], in: &subjectCodes, dataset: dataset),
                study: Self.code(facet.values[1], in: &studyCodes, dataset: dataset),
                attributes: (attributeCode(.modality, facet.values[Criterion.modality.column]),
                             attributeCode(.sex, facet.values[Criterion.sex.column]),
                             attributeCode(.bodyPart, facet.values[Criterion.bodyPart.column]),
                             attributeCode(.manufacturer, facet.values[Criterion.manufacturer.column])),
                instances: facet.instances)
            if let row = rowOfFacet[facet.id] {
                rows[row] = coded
            } else {
                rowOfFacet[facet.id] = rows.count
                rows.append(coded)
                facetIDs.append(facet.id)
            }
        }

        mutating func remove(_ id: Int64) {
            guard let row = rowOfFacet.removeValue(forKey: id) else { return }
            let last = rows.count - 1
            if row != last {
                rows[row] = rows[last]
                facetIDs[row] = facetIDs[last]
                rowOfFacet[facetIDs[row]] = row
            }
            rows.removeLast()
            facetIDs.removeLast()
        }
    }

    private let state = Mutex<State?>(nil)

    /// Reads every held dataset and facet. Call under the index's writer.
    func load(_ db: Database) throws {
        var loaded = State()
        let datasets = try Row.fetchAll(db, sql: """
            SELECT k.id, k.node, k.dataset, h.metadata FROM dataset_keys k JOIN heads h ON h.node = k.node AND h.dataset = k.dataset
            """)
        for row in datasets {
            _ = loaded.datasetCode(row["id"], Self.held(node: row["node"], dataset: row["dataset"], metadata: row["metadata"]))
        }
        let facets = try Row.fetchCursor(db, sql: """
            SELECT id, dataset_key, subject, study_uid, modality, body_part, manufacturer, sex, instances FROM facets
            """)
        while let row = try facets.next() {
            loaded.upsert(Facet(id: row[0], datasetKey: row[1], values: (2..<8).map { row[$0] }, instances: row[8]))
        }
        state.withLock { $0 = loaded }
    }

    var isLoaded: Bool { state.withLock { $0 != nil } }

    static func held(node: String, dataset: String, metadata: String) -> HeldDataset {
        let parsed = try? JSONValue.parse(Data(metadata.utf8))
        return HeldDataset(node: node, dataset: dataset, cancerType: parsed?["cancer_type"]?.string,
                           title: parsed?["title"]?.string, description: parsed?["description"]?.string,
                           searchable: parsed?["searchable"]?.bool ?? false, diagnosis: parsed?["diagnosis"]?.string)
    }

    /// Applies one committed intake: the dataset's description and the facets it changed (those
    /// with no instances left are gone). Before the first load there is nothing to update.
    func apply(datasetKey: Int64, dataset: HeldDataset, changed: [Facet]) {
        state.withLock { state in
            guard state != nil else { return }
            _ = state!.datasetCode(datasetKey, dataset)
            for facet in changed { state!.upsert(facet) }
        }
    }

    struct DatasetCount: Sendable {
        var node: String
        var dataset: String
        var subjects: Int
        var studies: Int
    }

    /// What the catalogue may say of one dataset, recomputed from the entries it holds (never from
    /// what a snapshot says of itself): distinct subjects and studies, instances, and per value of
    /// each criterion the number of distinct **subjects** with it.
    struct DatasetPeople: Sendable, Equatable {
        var subjects = 0
        var studies = 0
        var instances: Int64 = 0
        /// Criterion key (`modality`, `sex`, `body_part`, `manufacturer`) → value → subjects.
        var subjectsWith: [String: [String: Int]] = [:]
    }

    /// `DatasetPeople` for every held dataset, keyed by node and dataset, in one pass over the facets.
    func people() -> [NodeDataset: DatasetPeople] {
        state.withLock { state -> [NodeDataset: DatasetPeople] in
            guard let state else { return [:] }
            var out = [DatasetPeople](repeating: DatasetPeople(), count: state.datasets.count)
            var subjectSeen = [UInt64](repeating: 0, count: state.subjectCodes.count / 64 + 1)
            var studySeen = [UInt64](repeating: 0, count: state.studyCodes.count / 64 + 1)
            // (criterion, dataset, value code) → the subjects seen with it.
            var with: [[Int32: [Int32: Set<Int32>]]] = Array(repeating: [:], count: Criterion.allCases.count)
            for row in state.rows {
                let dataset = Int(row.dataset)
                out[dataset].instances += row.instances
                if Self.firstSighting(row.subject, &subjectSeen) { out[dataset].subjects += 1 }
                if Self.firstSighting(row.study, &studySeen) { out[dataset].studies += 1 }
                guard row.subject >= 0 else { continue }
                for criterion in Criterion.allCases {
                    let code = Self.attribute(row, criterion)
                    if code >= 0 { with[criterion.rawValue][row.dataset, default: [:]][code, default: []].insert(row.subject) }
                }
            }
            for criterion in Criterion.allCases {
                var names = [String](repeating: "", count: state.attributeCodes[criterion.rawValue].count)
                for (value, code) in state.attributeCodes[criterion.rawValue] { names[Int(code)] = value }
                for (dataset, codes) in with[criterion.rawValue] {
                    for (code, subjects) in codes where !names[Int(code)].isEmpty {
                        out[Int(dataset)].subjectsWith[criterion.key, default: [:]][names[Int(code)]] = subjects.count
                    }
                }
            }
            var keyed: [NodeDataset: DatasetPeople] = [:]
            for (index, held) in state.datasets.enumerated() {
                keyed[NodeDataset(node: held.node, dataset: held.dataset)] = out[index]
            }
            return keyed
        }
    }

    struct NodeDataset: Hashable, Sendable {
        var node: String
        var dataset: String
    }

    /// Which facets a count query's criteria admit (OR within one criterion): a table over each
    /// attribute's codes, so no string is compared per facet; `ignoring` leaves one criterion out.
    private struct RowFilter {
        let allowed: [[Bool]?]
        let datasetPasses: [Bool]

        init(_ criteria: CountCriteria, in state: State, ignoring ignored: Criterion? = nil) {
            allowed = Criterion.allCases.map { criterion in
                guard criterion != ignored, let wanted = criteria.values[criterion.key] else { return nil }
                let codes = state.attributeCodes[criterion.rawValue]
                var pass = [Bool](repeating: false, count: codes.count)
                for value in wanted { if let code = codes[value] { pass[Int(code)] = true } }
                return pass
            }
            datasetPasses = state.datasets.map { held in
                criteria.values["cancer_type"].map { $0.contains(held.cancerType ?? "") } ?? true
            }
        }

        func admits(_ row: CodedFacet) -> Bool {
            func passes(_ code: Int32, _ criterion: Criterion) -> Bool {
                guard let pass = allowed[criterion.rawValue] else { return true }
                return pass[Int(code)]
            }
            return datasetPasses[Int(row.dataset)] && passes(row.attributes.0, .modality) && passes(row.attributes.1, .sex)
                && passes(row.attributes.2, .bodyPart) && passes(row.attributes.3, .manufacturer)
        }
    }

    /// Distinct subjects and studies per dataset among facets meeting every instance criterion
    /// (OR within one), in datasets whose cancer type is listed (when the criterion is given).
    /// Datasets with no matching facet are left out.
    func count(_ criteria: CountCriteria) -> [DatasetCount] {
        state.withLock { state -> [DatasetCount] in
            guard let state else { return [] }
            let filter = RowFilter(criteria, in: state)
            var subjectSeen = [UInt64](repeating: 0, count: state.subjectCodes.count / 64 + 1)
            var studySeen = [UInt64](repeating: 0, count: state.studyCodes.count / 64 + 1)
            var matched = [Bool](repeating: false, count: state.datasets.count)
            var subjects = [Int](repeating: 0, count: state.datasets.count)
            var studies = [Int](repeating: 0, count: state.datasets.count)
            for row in state.rows where filter.admits(row) {
                let dataset = Int(row.dataset)
                matched[dataset] = true
                if Self.firstSighting(row.subject, &subjectSeen) { subjects[dataset] += 1 }
                if Self.firstSighting(row.study, &studySeen) { studies[dataset] += 1 }
            }
            return state.datasets.indices.filter { matched[$0] }
                .map { DatasetCount(node: state.datasets[$0].node, dataset: state.datasets[$0].dataset,
                                    subjects: subjects[$0], studies: studies[$0]) }
                .sorted { ($0.node, $0.dataset) < ($1.node, $1.dataset) }
        }
    }

    /// Per dataset, distinct subjects per value of one attribute (modality, sex, body part or
    /// manufacturer) among facets meeting the other criteria, and the distinct subjects among them
    /// all: the breakdown a count query's answer must be releasable from.
    func subjectsByValue(_ criteria: CountCriteria, of key: String) -> [NodeDataset: (total: Int, byValue: [String: Int])] {
        guard let grouped = Criterion.allCases.first(where: { $0.key == key }) else { return [:] }
        return state.withLock { state -> [NodeDataset: (total: Int, byValue: [String: Int])] in
            guard let state else { return [:] }
            let filter = RowFilter(criteria, in: state, ignoring: grouped)
            let valueCount = state.attributeCodes[grouped.rawValue].count
            let subjectWords = state.subjectCodes.count / 64 + 1
            var anySeen = [UInt64](repeating: 0, count: subjectWords)
            var valueSeen = [UInt64](repeating: 0, count: subjectWords * max(1, valueCount))
            var totals = [Int](repeating: 0, count: state.datasets.count)
            var byValue = [[Int]](repeating: [Int](repeating: 0, count: valueCount), count: state.datasets.count)
            for row in state.rows where filter.admits(row) {
                let dataset = Int(row.dataset)
                if Self.firstSighting(row.subject, &anySeen) { totals[dataset] += 1 }
                let value = Int([row.attributes.0, row.attributes.1, row.attributes.2, row.attributes.3][grouped.rawValue])
                guard value >= 0, value < valueCount else { continue }
                guard row.subject >= 0 else { continue }
                let word = value * subjectWords + Int(row.subject) >> 6, mask = UInt64(1) << UInt64(row.subject & 63)
                if valueSeen[word] & mask == 0 {
                    valueSeen[word] |= mask
                    byValue[dataset][value] += 1
                }
            }
            var names = [String](repeating: "", count: valueCount)
            for (name, code) in state.attributeCodes[grouped.rawValue] { names[Int(code)] = name }
            var out: [NodeDataset: (total: Int, byValue: [String: Int])] = [:]
            for index in state.datasets.indices where totals[index] > 0 {
                var cells: [String: Int] = [:]
                for (value, people) in byValue[index].enumerated() where people > 0 { cells[names[value]] = people }
                out[NodeDataset(node: state.datasets[index].node, dataset: state.datasets[index].dataset)] = (totals[index], cells)
            }
            return out
        }
    }

    /// The EUCAIM federated search over every held dataset: the query's tree evaluated per coded
    /// facet, each leaf turned first into a table over the attribute's codes (or the datasets, for
    /// the diagnosis), so no string is compared per facet. Published entries carry no ages: an age
    /// condition is false here, and listed as not evaluable.
    func search(_ query: SearchQuery, minCount: Int) throws(SearchQueryError) -> (rows: [SearchRow], ignored: [IgnoredCondition]) {
        try state.withLock { state throws(SearchQueryError) -> ([SearchRow], [IgnoredCondition]) in
            guard let state else { return ([], []) }
            var names: [[String]] = state.attributeCodes.map { codes in
                var out = [String](repeating: "", count: codes.count)
                for (value, code) in codes { out[Int(code)] = value }
                return out
            }
            let datasets = state.datasets.map { held in
                SearchDataset(id: held.dataset, name: held.title ?? held.dataset, description: held.description ?? "",
                              diagnosis: held.diagnosis ?? held.cancerType.flatMap { EucaimCodes.diagnosisByCancerType[$0.lowercased()] },
                              node: held.node)
            }
            var ignored: [IgnoredCondition] = []
            func table(_ criterion: Criterion, _ test: (String?) -> Bool) -> (codes: [Bool], absent: Bool) {
                (names[criterion.rawValue].map { test($0.nonEmpty) }, test(nil))
            }
            let predicate: (CodedFacet) -> Bool = try SearchCompiler.tree(query.root) { condition throws(SearchQueryError) in
                let compiled = try SearchCompiler.compile(condition, ignored: &ignored)
                let (criterion, test): (Criterion, (String?) -> Bool)
                switch compiled {
                case .attribute(.sex, let t): (criterion, test) = (.sex, t)
                case .attribute(.modality, let t): (criterion, test) = (.modality, t)
                case .attribute(.bodyPart, let t): (criterion, test) = (.bodyPart, t)
                case .attribute(.manufacturer, let t): (criterion, test) = (.manufacturer, t)
                case .attribute(.diagnosis, let t):
                    let passes = datasets.map { t($0.diagnosis) }
                    return { passes[Int($0.dataset)] }
                case .age:
                    ignored.append(IgnoredCondition(key: condition.key, reason: "the hub holds no ages (published entries carry none); "
                        + "the condition is false here, ask the nodes"))
                    return { _ in false }
                case .never:
                    return { _ in false }
                }
                let (codes, absent) = table(criterion, test)
                return { facet in
                    let code = Self.attribute(facet, criterion)
                    return code < 0 ? absent : codes[Int(code)]
                }
            }
            var rows = datasets.map { SearchRow(dataset: $0) }
            var subjectSeen = [Bool](repeating: false, count: state.subjectCodes.count)
            var studySeen = [Bool](repeating: false, count: state.studyCodes.count)
            let searchable = state.datasets.map(\.searchable)
            let listed: [Criterion] = [.sex, .modality, .bodyPart]
            var seenWith = datasets.map { _ in listed.map { [Set<Int32>](repeating: [], count: names[$0.rawValue].count) } }
            for facet in state.rows where searchable[Int(facet.dataset)] && predicate(facet) {
                let dataset = Int(facet.dataset)
                if facet.subject >= 0, !subjectSeen[Int(facet.subject)] {
                    subjectSeen[Int(facet.subject)] = true
                    rows[dataset].subjects += 1
                }
                if facet.study >= 0, !studySeen[Int(facet.study)] {
                    studySeen[Int(facet.study)] = true
                    rows[dataset].studies += 1
                }
                // Which subjects have each sex, modality and body part code, until min_count of them:
                // arrays by code, no string per facet.
                if facet.subject >= 0 {
                    for (slot, criterion) in listed.enumerated() {
                        let code = Self.attribute(facet, criterion)
                        if code >= 0, seenWith[dataset][slot][Int(code)].count < minCount {
                            seenWith[dataset][slot][Int(code)].insert(facet.subject)
                        }
                    }
                }
            }
            for index in rows.indices {
                rows[index].finish(minCount: minCount)
                for (slot, criterion) in listed.enumerated() {
                    for (code, subjects) in seenWith[index][slot].enumerated() where subjects.count >= minCount {
                        guard let value = names[criterion.rawValue][code].nonEmpty else { continue }
                        switch criterion {
                        case .sex: rows[index].sexes.insert(value)
                        case .modality: rows[index].modalities.insert(value)
                        default: rows[index].bodyParts.insert(value)
                        }
                    }
                }
            }
            names = []
            return (rows.filter { $0.subjects > 0 }.sorted { ($0.dataset.node ?? "", $0.dataset.id) < ($1.dataset.node ?? "", $1.dataset.id) },
                    SearchCompiler.distinct(ignored))
        }
    }

    /// Whether a subject or study code is seen for the first time in this pass (a bit per code; -1, absent, never is).
    private static func firstSighting(_ code: Int32, _ seen: inout [UInt64]) -> Bool {
        guard code >= 0 else { return false }
        let word = Int(code) >> 6, bit = UInt64(1) << UInt64(code & 63)
        if seen[word] & bit != 0 { return false }
        seen[word] |= bit
        return true
    }

    private static func attribute(_ facet: CodedFacet, _ criterion: Criterion) -> Int32 {
        switch criterion {
        case .modality: facet.attributes.0
        case .sex: facet.attributes.1
        case .bodyPart: facet.attributes.2
        case .manufacturer: facet.attributes.3
        }
    }
}

private extension String {
    /// '' stands for an absent attribute in the facets table.
    var nonEmpty: String? { isEmpty ? nil : self }
}
