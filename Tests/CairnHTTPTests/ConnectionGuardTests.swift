@testable import CairnHTTP
import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import Synchronization
import Testing

/// The connection guard on channels of its own: admission by client address, one request at a
/// time, the pipelining bound.
@Suite struct ConnectionGuardTests {
    static func channel(_ budget: ConnectionBudget, from address: String) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        // Connected as the server's child channel is: its remote end is the client.
        try channel.connect(to: SocketAddress(ipAddress: address, port: 40000)).wait()
        try channel.pipeline.syncOperations.addHandler(budget.guardHandler())
        return channel
    }

    static let head = HTTPRequestPart.head(HTTPRequest(method: .get, scheme: nil, authority: "node", path: "/healthz"))

    @Test func aClientGetsItsShareAndOthersStillGetIn() throws {
        let refusals = Mutex<[String]>([])
        let budget = ConnectionBudget(limits: ConnectionLimits(maxConnections: 3, maxConnectionsPerClient: 2, writeStallSeconds: 1),
                                      observer: ConnectionObserver(opened: { _ in }, refused: { reason in refusals.withLock { $0.append(reason) } },
                                                                   stalled: {}))
        let first = try Self.channel(budget, from: "10.0.0.1"), second = try Self.channel(budget, from: "10.0.0.1")
        let third = try Self.channel(budget, from: "10.0.0.1")
        #expect(first.isActive && second.isActive && !third.isActive)
        let other = try Self.channel(budget, from: "10.0.0.2")
        #expect(other.isActive && budget.openConnections == 3)
        let fourth = try Self.channel(budget, from: "10.0.0.3")
        #expect(!fourth.isActive)
        #expect(refusals.withLock { $0 } == ["client_full", "server_full"])
        // A place given back is taken again.
        _ = try first.finish()
        #expect(budget.openConnections == 2)
        #expect(try Self.channel(budget, from: "10.0.0.1").isActive)
    }

    /// Counts read-completes after the guard: the channel's async stream hands its task what it
    /// buffered only on one (a request passed on without it was never served: the second review).
    final class ReadCompletes: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPRequestPart
        var count = 0
        func channelReadComplete(context: ChannelHandlerContext) {
            count += 1
            context.fireChannelReadComplete()
        }
    }

    @Test func pipelinedRequestsWaitForTheResponseBefore() throws {
        let budget = ConnectionBudget(limits: ConnectionLimits())
        let channel = try Self.channel(budget, from: "10.0.0.1")
        let completes = ReadCompletes()
        try channel.pipeline.syncOperations.addHandler(completes)
        for _ in 0..<3 {
            try channel.writeInbound(Self.head)
            try channel.writeInbound(HTTPRequestPart.end(nil))
        }
        // The first request only.
        #expect(try channel.readInbound(as: HTTPRequestPart.self) == Self.head)
        #expect(try channel.readInbound(as: HTTPRequestPart.self) == .end(nil))
        #expect(try channel.readInbound(as: HTTPRequestPart.self) == nil)
        // Its response ends: after a turn of the loop, the second comes.
        try channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .ok)))
        #expect(try channel.readInbound(as: HTTPRequestPart.self) == nil)
        try channel.writeOutbound(HTTPResponsePart.end(nil))
        #expect(try channel.readInbound(as: HTTPRequestPart.self) == nil)
        let before = completes.count
        channel.embeddedEventLoop.run()
        #expect(completes.count == before + 1)
        #expect(try channel.readInbound(as: HTTPRequestPart.self) == Self.head)
        #expect(try channel.readInbound(as: HTTPRequestPart.self) == .end(nil))
        #expect(try channel.readInbound(as: HTTPRequestPart.self) == nil)
        #expect(channel.isActive)
    }

    @Test func aClientPipeliningMoreThanSixteenAheadIsDisconnected() throws {
        let budget = ConnectionBudget(limits: ConnectionLimits())
        let sixteen = try Self.channel(budget, from: "10.0.0.1")
        for _ in 0..<16 { try sixteen.writeInbound(Self.head) }
        #expect(sixteen.isActive)
        let seventeen = try Self.channel(budget, from: "10.0.0.2")
        for _ in 0..<18 { try? seventeen.writeInbound(Self.head) }
        #expect(!seventeen.isActive)
    }

    /// A client that leaves output unread for write_stall_seconds is cut; one whose connection
    /// turns writable again in time is not, however often it flips (every large response does).
    @Test func aStalledReaderIsCutAndAFlippingOneIsNot() throws {
        let stalls = Mutex(0)
        let budget = ConnectionBudget(limits: ConnectionLimits(writeStallSeconds: 2),
                                      observer: ConnectionObserver(opened: { _ in }, refused: { _ in }, stalled: { stalls.withLock { $0 += 1 } }))
        let flipping = try Self.channel(budget, from: "10.0.0.1")
        let loop = try #require(flipping.eventLoop as? EmbeddedEventLoop)
        for _ in 0..<10 {
            flipping.isWritable = false
            flipping.pipeline.fireChannelWritabilityChanged()
            loop.advanceTime(by: .milliseconds(900))
            flipping.isWritable = true
            flipping.pipeline.fireChannelWritabilityChanged()
            loop.advanceTime(by: .milliseconds(100))
        }
        #expect(flipping.isActive && stalls.withLock { $0 } == 0)

        let stalled = try Self.channel(budget, from: "10.0.0.2")
        let stalledLoop = try #require(stalled.eventLoop as? EmbeddedEventLoop)
        stalled.isWritable = false
        stalled.pipeline.fireChannelWritabilityChanged()
        stalledLoop.advanceTime(by: .milliseconds(1900))
        #expect(stalled.isActive)
        stalledLoop.advanceTime(by: .milliseconds(200))
        #expect(!stalled.isActive && stalls.withLock { $0 } == 1)
    }
}
