import CairnFoundation
import HTTPTypes
import Hummingbird

/// The one error answer of the node and the hub: the JSON body DESIGN.md fixes,
/// `{"error": "...", "detail": "..."}`, plus any members a route adds (the hub's head on a 409).
public struct APIError: HTTPResponseError, CustomStringConvertible {
    public let status: HTTPResponse.Status
    /// A short stable code (`unauthorized`, `forbidden`, `not_found`, ...).
    public let error: String
    public let detail: String
    public var headers: HTTPFields
    public var extra: [String: JSONValue]

    public init(_ status: HTTPResponse.Status, _ error: String, _ detail: String, headers: HTTPFields = [:],
                extra: [String: JSONValue] = [:]) {
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers
        self.extra = extra
    }

    public var description: String { "\(status.code) \(error): \(detail)" }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        var body = extra
        body["error"] = .string(error)
        body["detail"] = .string(detail)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: JSONValue.object(body).canonicalBytes())))
    }

    public static func unauthorized(_ detail: String) -> APIError {
        APIError(.unauthorized, "unauthorized", detail, headers: [.wwwAuthenticate: "Bearer realm=\"cairn\""])
    }

    public static func forbidden(_ detail: String) -> APIError { APIError(.forbidden, "forbidden", detail) }
    public static func notFound(_ detail: String) -> APIError { APIError(.notFound, "not_found", detail) }
    public static func badRequest(_ detail: String) -> APIError { APIError(.badRequest, "bad_request", detail) }
}
