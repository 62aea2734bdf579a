@testable import CairnHTTP
import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import Testing

/// The handler that answers cached reads before the application: what it answers, what it leaves
/// to the application, and how it ends a connection that asked to close.
@Suite struct ImmediateResponseHandlerTests {
    /// Collects what reaches the application.
    final class Application: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPRequestPart
        var parts: [HTTPRequestPart] = []
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { parts.append(unwrapInboundIn(data)) }
    }

    static func channel() throws -> (EmbeddedChannel, Application) {
        let channel = EmbeddedChannel()
        try channel.connect(to: SocketAddress(ipAddress: "10.0.0.1", port: 40000)).wait()
        let application = Application()
        try channel.pipeline.syncOperations.addHandler(ImmediateResponseHandler(serverName: "test") { request in
            request.path == "/cached" ? ImmediateResponse(head: HTTPResponse(status: .ok, headerFields: [.contentLength: "5"]),
                                                          body: ByteBuffer(string: "hello")) : nil
        })
        try channel.pipeline.syncOperations.addHandler(application)
        return (channel, application)
    }

    static func get(_ path: String, _ fields: HTTPFields = [:]) -> HTTPRequestPart {
        .head(HTTPRequest(method: .get, scheme: nil, authority: "node", path: path, headerFields: fields))
    }

    @Test func answersWhatItCanAndPassesTheRest() throws {
        let (channel, application) = try Self.channel()
        try channel.writeInbound(Self.get("/cached"))
        try channel.writeInbound(HTTPRequestPart.end(nil))
        guard case .head(let head) = try channel.readOutbound(as: HTTPResponsePart.self) else { Issue.record("no head"); return }
        #expect(head.status == .ok && head.headerFields[.server] == "test" && head.headerFields[.date] != nil)
        #expect(try channel.readOutbound(as: HTTPResponsePart.self) == .body(ByteBuffer(string: "hello")))
        #expect(try channel.readOutbound(as: HTTPResponsePart.self) == .end(nil))
        #expect(application.parts.isEmpty)

        try channel.writeInbound(Self.get("/other"))
        try channel.writeInbound(HTTPRequestPart.end(nil))
        #expect(application.parts.count == 2)
        #expect(try channel.readOutbound(as: HTTPResponsePart.self) == nil)
    }

    @Test func requestsWithABodyOrAnUnwritableChannelGoToTheApplication() throws {
        let (channel, application) = try Self.channel()
        try channel.writeInbound(Self.get("/cached", [.contentLength: "3"]))
        try channel.writeInbound(HTTPRequestPart.body(ByteBuffer(string: "abc")))
        try channel.writeInbound(HTTPRequestPart.end(nil))
        try channel.writeInbound(Self.get("/cached", [.expect: "100-continue"]))
        try channel.writeInbound(HTTPRequestPart.end(nil))
        channel.isWritable = false
        try channel.writeInbound(Self.get("/cached"))
        try channel.writeInbound(HTTPRequestPart.end(nil))
        #expect(application.parts.count == 7)
        #expect(try channel.readOutbound(as: HTTPResponsePart.self) == nil)
    }

    @Test func nothingIsReadAfterAnAnswerThatCloses() throws {
        let (channel, application) = try Self.channel()
        try channel.writeInbound(Self.get("/cached", [.connection: "close"]))
        try channel.writeInbound(HTTPRequestPart.end(nil))
        try channel.writeInbound(Self.get("/other"))
        try channel.writeInbound(HTTPRequestPart.end(nil))
        #expect(application.parts.isEmpty)
        #expect(!channel.isActive)
    }
}
