import CairnAudit
import CairnAuth
import CairnFoundation
import CairnHTTP
import CairnSearch
import CairnStore
import Foundation
import HTTPTypes
import Hummingbird
import Synchronization

extension NodeAPI {
    /// The EUCAIM federated search as samply Focus calls a provider: `POST /eucaim/search` with the
    /// query AST (Focus's `omop` endpoint type), `GET /eucaim/search?gender=…` (its `eucaim-api`
    /// type). Counts over the datasets marked searchable, among the instances meeting the query.
    func addSearchRoutes(to router: Router<NodeRequestContext>) {
        router.post("/eucaim/search") { request, context in
            let actor = try await authorizeSearch(request, context: context)
            // One byte over the bound is enough to refuse it, with the 422 every bad query gets.
            let bytes = try await request.body.prefix(upTo: SearchQuery.maxBodyBytes)
            return try answerSearch(actor: actor, context: context) { () throws(SearchQueryError) in try SearchQuery(json: bytes) }
        }
        router.get("/eucaim/search") { request, context in
            let actor = try await authorizeSearch(request, context: context)
            let parameters = request.uri.queryParameters.map { (String($0.key), String($0.value)) }
            return try answerSearch(actor: actor, context: context) { () throws(SearchQueryError) in
                try SearchQuery(parameters: parameters)
            }
        }
    }

    /// `Authorization: Secret <search_secret>` (Focus's AUTH_HEADER), or a Bearer token with the
    /// `search` scope. Deny by default: without a configured secret only tokens work.
    func authorizeSearch(_ request: Request, context: NodeRequestContext) async throws -> String {
        let header = request.headers[.authorization] ?? ""
        guard header.count > 7, header.prefix(7).lowercased() == "secret " else {
            return try await authorize(request, context: context, scope: .search, action: "search").subject
        }
        if let problem = audit.problem { throw APIError(.serviceUnavailable, "audit_unavailable", problem) }
        guard let secret = config.searchSecret, SharedSecret.matches(header.dropFirst(7), secret) else {
            let detail = config.searchSecret == nil ? "no search_secret is configured on this node" : "wrong search secret"
            deny(actor: "-", action: "search", status: 401, detail: detail, context: context)
            throw APIError.unauthorized(detail + "; send a search-scope Bearer token or the configured secret")
        }
        return "focus (search_secret)"
    }

    func answerSearch(actor: String, context: NodeRequestContext,
                      parse: () throws(SearchQueryError) -> SearchQuery) throws -> Response {
        let query: SearchQuery
        let rows: [SearchRow], ignored: [IgnoredCondition]
        do {
            query = try parse()
            (rows, ignored) = try SearchEvaluator(index: try searchFacets.current()).evaluate(query, minCount: config.minCount)
        } catch let error as SearchQueryError {
            audit.record(AuditEvent(actor: actor, action: "search", status: 422, detail: "refused: \(error.reason.prefix(200))"))
            throw APIError(.unprocessableContent, "bad_query", error.reason)
        }
        let answer = SearchAnswer.json(rows, ignored: ignored, minCount: config.minCount)
        audit.record(AuditEvent(actor: actor, action: "search", status: 200,
                                detail: "query \(query.id.map { String($0.prefix(80)) } ?? "-"): \(rows.count) collections"
                                    + (ignored.isEmpty ? "" : ", \(ignored.count) conditions not evaluable")))
        return Response(status: .ok, headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(bytes: answer.canonicalBytes())))
    }
}

/// The searchable datasets' facets in memory, for searches that scan them instead of the index.
/// Rebuilt when the index's search generation (moved by triggers on every instance and dataset
/// change, from any process) differs from the one they were read at.
final class SearchFacetCache: Sendable {
    private let store: BlobStore
    private let cached = Mutex<(generation: Int64, index: SearchIndex)?>(nil)

    init(store: BlobStore) { self.store = store }

    func current() throws -> SearchIndex {
        let generation = try store.searchGeneration()
        if let hit = cached.withLock({ $0 }), hit.generation == generation { return hit.index }
        let (read, datasets, rows) = try store.searchFacets()
        let index = Self.index(datasets: datasets, rows: rows)
        cached.withLock { $0 = (read, index) }
        return index
    }

    static func index(datasets: [DatasetInfo], rows: [SearchFacetRow]) -> SearchIndex {
        let positions = Dictionary(uniqueKeysWithValues: datasets.enumerated().map { ($1.id, $0) })
        var subjects: [String: Int] = [:], studies: [String: Int] = [:]
        var facets: [SearchFacet] = []
        facets.reserveCapacity(rows.count)
        for row in rows {
            guard let dataset = positions[row.dataset] else { continue }
            // An instance without a subject pseudonym (or study UID) is counted as neither, as at the hub.
            var subject = -1, study = -1
            if !row.subject.isEmpty {
                subject = subjects[row.dataset + "\u{0}" + row.subject, default: subjects.count]
                subjects[row.dataset + "\u{0}" + row.subject] = subject
            }
            if !row.study.isEmpty {
                study = studies[row.dataset + "\u{0}" + row.study, default: studies.count]
                studies[row.dataset + "\u{0}" + row.study] = study
            }
            facets.append(SearchFacet(dataset: dataset, subject: subject, study: study, sex: row.sex, modality: row.modality,
                                      bodyPart: row.bodyPart, manufacturer: row.manufacturer, ageYears: row.ageYears))
        }
        let described = datasets.map { info in
            SearchDataset(id: info.id, name: info.title ?? info.id, description: info.description ?? "",
                          diagnosis: info.diagnosis ?? info.cancerType.flatMap { EucaimCodes.diagnosisByCancerType[$0.lowercased()] })
        }
        return SearchIndex(datasets: described, facets: facets, subjectCodes: subjects.count, studyCodes: studies.count)
    }
}
