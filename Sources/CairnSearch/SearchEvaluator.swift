/// A searchable dataset, as an answer row names it.
public struct SearchDataset: Sendable, Equatable {
    public var id: String
    public var name: String
    public var description: String
    /// The dataset's diagnosis code (`SNOMEDCT…`), from `--diagnosis` or its cancer type.
    public var diagnosis: String?
    /// The node holding it (hub answers; nil on a node).
    public var node: String?

    public init(id: String, name: String, description: String, diagnosis: String?, node: String? = nil) {
        self.id = id
        self.name = name
        self.description = description
        self.diagnosis = diagnosis
        self.node = node
    }
}

/// Instances that agree on everything a query can ask, counted once: the unit a search scans.
public struct SearchFacet: Sendable, Equatable {
    public var dataset: Int
    /// Codes dense per search index, unique per (dataset, subject) and (dataset, study).
    public var subject: Int
    public var study: Int
    public var sex: String?
    public var modality: String?
    public var bodyPart: String?
    public var manufacturer: String?
    public var ageYears: Double?

    public init(dataset: Int, subject: Int, study: Int, sex: String?, modality: String?, bodyPart: String?,
                manufacturer: String?, ageYears: Double?) {
        self.dataset = dataset
        self.subject = subject
        self.study = study
        self.sex = sex
        self.modality = modality
        self.bodyPart = bodyPart
        self.manufacturer = manufacturer
        self.ageYears = ageYears
    }
}

/// What one search reads: the searchable datasets and their facets.
public struct SearchIndex: Sendable {
    public var datasets: [SearchDataset]
    public var facets: [SearchFacet]
    public var subjectCodes: Int
    public var studyCodes: Int

    public init(datasets: [SearchDataset], facets: [SearchFacet], subjectCodes: Int, studyCodes: Int) {
        self.datasets = datasets
        self.facets = facets
        self.subjectCodes = subjectCodes
        self.studyCodes = studyCodes
    }
}

/// One dataset's answer: distinct subjects and studies among the instances meeting the query,
/// and what those instances are. What could single a person out is only said of at least
/// `minCount` subjects (`DisclosureRule`): the age range runs from the minCount-th youngest to the
/// minCount-th oldest subject (none under 2 x minCount - 1 subjects), and a sex, modality or body
/// part is listed when that many subjects have it.
public struct SearchRow: Sendable, Equatable {
    public var dataset: SearchDataset
    public var subjects = 0
    public var studies = 0
    public var ageRange: (min: Double, max: Double)?
    public var sexes: Set<String> = []
    public var modalities: Set<String> = []
    public var bodyParts: Set<String> = []
    var subjectAges: [Double] = []
    /// Per "kind:value", the subjects seen with it, until there are minCount of them.
    var valueSubjects: [String: Set<Int>] = [:]

    public init(dataset: SearchDataset) { self.dataset = dataset }

    /// Counts one matching facet; `newSubject` when its subject is seen for the first time.
    public mutating func note(subject: Int, newSubject: Bool, age: Double?, sex: String?, modality: String?, bodyPart: String?,
                              minCount: Int) {
        if newSubject, let age { subjectAges.append(age) }
        guard subject >= 0 else { return }
        for (kind, value) in [("s", sex), ("m", modality), ("b", bodyPart)] {
            guard let value, !value.isEmpty else { continue }
            let key = kind + ":" + value
            if valueSubjects[key, default: []].count < minCount { valueSubjects[key, default: []].insert(subject) }
        }
    }

    /// Fills the age range and the listed values from what `note` gathered, as the disclosure rule
    /// allows.
    public mutating func finish(minCount: Int) {
        let rule = DisclosureRule(minCount: minCount)
        ageRange = rule.range(subjectAges)
        for (key, seen) in valueSubjects where rule.releases(seen.count) {
            let value = String(key.dropFirst(2))
            switch key.first {
            case "s": sexes.insert(value)
            case "m": modalities.insert(value)
            default: bodyParts.insert(value)
            }
        }
        subjectAges = []
        valueSubjects = [:]
    }

    public static func == (a: SearchRow, b: SearchRow) -> Bool {
        a.dataset == b.dataset && a.subjects == b.subjects && a.studies == b.studies && a.sexes == b.sexes
            && a.modalities == b.modalities && a.bodyParts == b.bodyParts
            && a.ageRange?.min == b.ageRange?.min && a.ageRange?.max == b.ageRange?.max
    }
}

/// A condition Cairn cannot evaluate (a key or code it does not know): it is false, as in the
/// reference provider, and the answer lists it so the asker can see why nothing matched.
public struct IgnoredCondition: Sendable, Equatable {
    public var key: String
    public var reason: String

    public init(key: String, reason: String) {
        self.key = key
        self.reason = reason
    }
}

/// What one condition asks of an instance, once its key and code are understood: a test on one
/// coded attribute, on the age, or nothing can meet it (an unknown key or code, listed as ignored).
public enum CompiledCondition: Sendable {
    public enum Attribute: Sendable { case sex, modality, bodyPart, manufacturer, diagnosis }
    case attribute(Attribute, @Sendable (String?) -> Bool)
    case age(@Sendable (Double?) -> Bool)
    case never
}

/// Compiles queries: the tree into one predicate over whatever an evaluator scans, each leaf through
/// `compile(_:ignored:)`, so the node (facets of strings) and the hub (facets of integer codes)
/// apply the same rules.
public enum SearchCompiler {
    /// Inlinable so that each caller gets it specialised for its facet type: unspecialised, every
    /// facet paid for generic metadata lookups (a hub search of 600,000 facets took 600 ms).
    @inlinable
    public static func tree<T>(_ node: SearchNode, leaf: (SearchCondition) throws(SearchQueryError) -> (T) -> Bool)
        throws(SearchQueryError) -> (T) -> Bool {
        switch node {
        case .operation(let operand, let children):
            var parts: [(T) -> Bool] = []
            for child in children { parts.append(try tree(child, leaf: leaf)) }
            // An empty operation asks nothing: every instance meets it (Focus's empty query).
            if parts.isEmpty { return { _ in true } }
            if parts.count == 1 { return parts[0] }
            switch operand {
            case .and:
                return { item in
                    for part in parts where !part(item) { return false }
                    return true
                }
            case .or:
                return { item in
                    for part in parts where part(item) { return true }
                    return false
                }
            }
        case .condition(let condition):
            return try leaf(condition)
        }
    }

    public static func compile(_ condition: SearchCondition, ignored: inout [IgnoredCondition]) throws(SearchQueryError) -> CompiledCondition {
        let exact: @Sendable (String, String) -> Bool = { $0.uppercased() == $1.uppercased() }
        let prefix: @Sendable (String, String) -> Bool = { $0.uppercased().hasPrefix($1) }
        switch condition.key {
        case EucaimCodes.sexKey:
            return .attribute(.sex, try categorical(condition, table: EucaimCodes.sex, match: exact, ignored: &ignored))
        case EucaimCodes.modalityKey:
            return .attribute(.modality, try categorical(condition, table: EucaimCodes.modality, match: exact, ignored: &ignored))
        case EucaimCodes.bodyPartKey:
            return .attribute(.bodyPart, try categorical(condition, table: EucaimCodes.bodyPart, match: exact, ignored: &ignored))
        case EucaimCodes.manufacturerKey:
            return .attribute(.manufacturer, try categorical(condition, table: EucaimCodes.manufacturer, match: prefix, ignored: &ignored))
        case EucaimCodes.diagnosisKey:
            let table = Dictionary(uniqueKeysWithValues: EucaimCodes.diagnoses.map { ($0, [$0]) })
            return .attribute(.diagnosis, try categorical(condition, table: table, match: exact, ignored: &ignored))
        case EucaimCodes.ageKey:
            return .age(try numeric(condition))
        default:
            ignored.append(IgnoredCondition(key: condition.key, reason: "not a criterion Cairn indexes; the condition is false"))
            return .never
        }
    }

    /// A criterion over coded values: EQUALS/CONTAINS a code, NOT_EQUALS, IN a list. A code Cairn
    /// does not know is false (and listed); "unknown" matches instances without a value.
    static func categorical(_ condition: SearchCondition, table: [String: [String]], match: @escaping @Sendable (String, String) -> Bool,
                            ignored: inout [IgnoredCondition]) throws(SearchQueryError) -> @Sendable (String?) -> Bool {
        func meaning(_ code: String, ignored: inout [IgnoredCondition]) -> (@Sendable (String?) -> Bool)? {
            if code == EucaimCodes.unknown { return { ($0 ?? "").isEmpty } }
            guard let accepted = table[code] else {
                ignored.append(IgnoredCondition(key: condition.key, reason: "unknown code '\(code.prefix(64))'; the condition is false"))
                return nil
            }
            return { have in
                guard let have, !have.isEmpty else { return false }
                return accepted.contains { match(have, $0) }
            }
        }
        switch (condition.comparison, condition.value) {
        case (.equals, .string(let code)), (.contains, .string(let code)):
            return meaning(code, ignored: &ignored) ?? { _ in false }
        case (.notEquals, .string(let code)):
            guard let positive = meaning(code, ignored: &ignored) else { return { _ in false } }
            // A value must be known to differ: an instance without one matches neither.
            if code == EucaimCodes.unknown { return { !positive($0) } }
            return { have in !(have ?? "").isEmpty && !positive(have) }
        case (.in, .strings(let codes)):
            let parts = codes.compactMap { meaning($0, ignored: &ignored) }
            return { have in parts.contains { $0(have) } }
        case (.in, _):
            throw SearchQueryError("\(condition.key): IN takes a list of codes")
        case (.equals, _), (.notEquals, _), (.contains, _):
            throw SearchQueryError("\(condition.key): \(condition.comparison.rawValue) takes one code (a string)")
        default:
            throw SearchQueryError("\(condition.key): \(condition.comparison.rawValue) does not apply to a coded criterion")
        }
    }

    /// Age in years: BETWEEN {min, max} (inclusive; max 0 with min above 0 means no upper bound, as
    /// the EUCAIM UI sends "at least"), LOWER_THAN / GREATER_THAN a number (or a range's max / min),
    /// EQUALS / NOT_EQUALS a number. Instances without an age match none of them.
    static func numeric(_ condition: SearchCondition) throws(SearchQueryError) -> @Sendable (Double?) -> Bool {
        let test: @Sendable (Double) -> Bool
        switch (condition.comparison, condition.value) {
        case (.between, .range(let low, let high)):
            let upper = high == 0 && low > 0 ? Double.infinity : high
            test = { $0 >= low && $0 <= upper }
        case (.lowerThan, .number(let bound)), (.lowerThan, .range(min: _, max: let bound)):
            test = { $0 < bound }
        case (.greaterThan, .number(let bound)), (.greaterThan, .range(min: let bound, max: _)):
            test = { $0 > bound }
        case (.equals, .number(let wanted)):
            test = { $0.rounded(.down) == wanted.rounded(.down) }
        case (.notEquals, .number(let wanted)):
            test = { $0.rounded(.down) != wanted.rounded(.down) }
        default:
            throw SearchQueryError("\(condition.key): \(condition.comparison.rawValue) with this value does not apply to an age "
                + "(BETWEEN {min, max}, LOWER_THAN, GREATER_THAN, EQUALS or NOT_EQUALS a number)")
        }
        return { $0.map(test) ?? false }
    }

    /// Ignored conditions, each listed once.
    public static func distinct(_ ignored: [IgnoredCondition]) -> [IgnoredCondition] {
        var seen = Set<String>()
        return ignored.filter { seen.insert("\($0.key) \($0.reason)").inserted }
    }
}

/// Evaluates a query over a node's search index: matching facets mark their subject and study
/// once per dataset, and add their age, sex, modality and body part to the dataset's row.
public struct SearchEvaluator: Sendable {
    public let index: SearchIndex

    public init(index: SearchIndex) { self.index = index }

    public func evaluate(_ query: SearchQuery, minCount: Int) throws(SearchQueryError) -> (rows: [SearchRow], ignored: [IgnoredCondition]) {
        var ignored: [IgnoredCondition] = []
        let datasets = index.datasets
        // Each leaf's answer per distinct value, computed once: a long IN list costs per value, not per facet.
        func memo(_ test: @escaping @Sendable (String?) -> Bool) -> (String?) -> Bool {
            let cache = MemoTable()
            return { value in cache.answer(value, test) }
        }
        let predicate: (SearchFacet) -> Bool = try SearchCompiler.tree(query.root) { condition throws(SearchQueryError) in
            switch try SearchCompiler.compile(condition, ignored: &ignored) {
            case .attribute(.sex, let test): let t = memo(test); return { t($0.sex) }
            case .attribute(.modality, let test): let t = memo(test); return { t($0.modality) }
            case .attribute(.bodyPart, let test): let t = memo(test); return { t($0.bodyPart) }
            case .attribute(.manufacturer, let test): let t = memo(test); return { t($0.manufacturer) }
            case .attribute(.diagnosis, let test): let t = memo(test); return { t(datasets[$0.dataset].diagnosis) }
            case .age(let test): return { test($0.ageYears) }
            case .never: return { _ in false }
            }
        }
        var rows = datasets.map { SearchRow(dataset: $0) }
        var subjectSeen = [Bool](repeating: false, count: index.subjectCodes)
        var studySeen = [Bool](repeating: false, count: index.studyCodes)
        for facet in index.facets where predicate(facet) {
            var newSubject = false
            if facet.subject >= 0, !subjectSeen[facet.subject] {
                subjectSeen[facet.subject] = true
                rows[facet.dataset].subjects += 1
                newSubject = true
            }
            if facet.study >= 0, !studySeen[facet.study] {
                studySeen[facet.study] = true
                rows[facet.dataset].studies += 1
            }
            rows[facet.dataset].note(subject: facet.subject, newSubject: newSubject, age: facet.ageYears, sex: facet.sex,
                                     modality: facet.modality, bodyPart: facet.bodyPart, minCount: minCount)
        }
        for index in rows.indices { rows[index].finish(minCount: minCount) }
        return (rows.filter { $0.subjects > 0 }, SearchCompiler.distinct(ignored))
    }
}

/// A leaf's answers by value, filled as values are met (one query, one thread).
final class MemoTable {
    private var answers: [String?: Bool] = [:]

    func answer(_ value: String?, _ test: (String?) -> Bool) -> Bool {
        if let known = answers[value] { return known }
        let result = test(value)
        answers[value] = result
        return result
    }
}
