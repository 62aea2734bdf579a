import Foundation
import HTTPTypes
import HummingbirdCore
import NIOCore
import NIOHTTPTypes

/// A whole answer (head and body) that a server can give on the event loop, before a request
/// reaches the application: what a node serves from memory.
public struct ImmediateResponse: Sendable {
    public var head: HTTPResponse
    public var body: ByteBuffer

    public init(head: HTTPResponse, body: ByteBuffer) {
        self.head = head
        self.body = body
    }
}

/// Gives the answer to a request head, or nil to leave the request to the application. Runs on
/// the connection's event loop: it must not block.
public typealias ImmediateResponder = @Sendable (_ request: HTTPRequest) -> ImmediateResponse?

/// Answers the requests `respond` can answer at once, and passes every other on, untouched, to
/// the application. It sits after Hummingbird's connection-state handler, which therefore sees
/// every request and response (idle timeout, in-flight count) as before, and after the
/// connection guard, which still lets one request at a time through. An answer goes out in one
/// flush with the headers the application would add (`Date`, `Server`); `Connection: close`
/// closes the connection after it, as Hummingbird does.
///
/// Why: a cached 64 KiB range cost ~160 us of CPU through the async request loop (a task resumed
/// per request, the router, the middlewares, the async writer); most of that is not the answer.
final class ImmediateResponseHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundOut = HTTPResponsePart

    private enum State {
        case idle
        /// Answered at the head; its body parts are dropped and the answer goes out at its end.
        case answering(ImmediateResponse, close: Bool)
        /// Handed to the application, up to and including its end.
        case passing
        /// Answered a request that asked to close the connection: nothing after it is read.
        case closing
    }

    private var state = State.idle
    private let respond: ImmediateResponder
    private let serverName: String
    private var date: (second: Int, text: String) = (-1, "")

    init(serverName: String, respond: @escaping ImmediateResponder) {
        self.serverName = serverName
        self.respond = respond
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch (state, part) {
        case (.closing, _):
            break
        case (.idle, .head(let request)):
            // Only a request without a body, and only while the socket takes what is written: a
            // client that reads nothing must not make the node buffer answer after answer (the
            // application's bodies wait for writability), and one that sends a body (or waits
            // for 100-continue) is the application's to answer.
            if context.channel.isWritable, Self.hasNoBody(request), let answer = respond(request) {
                state = .answering(answer, close: request.headerFields[.connection]?.lowercased() == "close")
            } else {
                state = .passing
                context.fireChannelRead(data)
            }
        case (.answering, .body):
            break
        case (.answering(let answer, let close), .end):
            state = close ? .closing : .idle
            var head = answer.head
            head.headerFields[.date] = httpDate()
            head.headerFields[.server] = serverName
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            if answer.body.readableBytes > 0 { context.write(wrapOutboundOut(.body(answer.body)), promise: nil) }
            if close {
                context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            } else {
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        case (.answering, .head):
            // A head before the last one ended: the decoder does not produce that; let the
            // application see it and fail as it would.
            state = .passing
            context.fireChannelRead(data)
        case (.passing, .end):
            state = .idle
            context.fireChannelRead(data)
        default:
            context.fireChannelRead(data)
        }
    }

    /// No Content-Length (or 0), no Transfer-Encoding, no Expect: the request's end follows its head.
    static func hasNoBody(_ request: HTTPRequest) -> Bool {
        let fields = request.headerFields
        if fields[.transferEncoding] != nil || fields[.expect] != nil { return false }
        guard let length = fields[.contentLength] else { return true }
        return length == "0"
    }

    /// IMF-fixdate (RFC 9110 §5.6.7), made once a second.
    private func httpDate() -> String {
        var now = time(nil)
        if Int(now) == date.second { return date.text }
        var parts = tm()
        gmtime_r(&now, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let text = "\(days[Int(parts.tm_wday) % 7]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon) % 12]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
        date = (Int(now), text)
        return text
    }
}
