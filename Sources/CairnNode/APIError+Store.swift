import CairnHTTP
import CairnStore
import Foundation
import HTTPTypes
import Hummingbird

/// An HTTP error with the JSON body DESIGN.md fixes: `{"error": "...", "detail": "..."}`.
public struct NodeError: HTTPResponseError, CustomStringConvertible {
    public let status: HTTPResponse.Status
    /// A short stable code (`unauthorized`, `forbidden`, `not_found`, ...).
    public let error: String
    public let detail: String
    public var headers: HTTPFields = [:]

    public init(_ status: HTTPResponse.Status, _ error: String, _ detail: String, headers: HTTPFields = [:]) {
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers
    }

    public var description: String { "\(status.code) \(error): \(detail)" }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        let body = try JSONSerialization.data(withJSONObject: ["error": error, "detail": detail], options: [.sortedKeys])
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    static func unauthorized(_ detail: String) -> NodeError {
        NodeError(.unauthorized, "unauthorized", detail, headers: [.wwwAuthenticate: "Bearer realm=\"cairn\""])
    }

    static func forbidden(_ detail: String) -> NodeError { NodeError(.forbidden, "forbidden", detail) }
    static func notFound(_ detail: String) -> NodeError { NodeError(.notFound, "not_found", detail) }
    static func badRequest(_ detail: String) -> NodeError { NodeError(.badRequest, "bad_request", detail) }

    /// Maps store failures to statuses; the detail names digest and frame but never a token.
    static func from(_ error: any Error) -> NodeError {
        if let error = error as? NodeError { return error }
        guard let error = error as? StoreError else { return NodeError(.internalServerError, "internal", "\(error)") }
        switch error {
        case .notFound: return .notFound("\(error)")
        case .diskFull: return NodeError(.insufficientStorage, "disk_full", "\(error)")
        case .invalidArgument: return .badRequest("\(error)")
        case .rangeNotSatisfiable: return NodeError(.rangeNotSatisfiable, "range_not_satisfiable", "\(error)")
        case .missing, .corruptFrame, .corruptBlob, .digestMismatch:
            return NodeError(.internalServerError, "blob_unavailable", "\(error)")
        default: return NodeError(.internalServerError, "internal", "\(error)")
        }
    }
}

