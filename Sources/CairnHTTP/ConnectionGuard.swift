import NIOCore
import NIOHTTPTypes
import Synchronization

/// How many connections a server keeps, and how long it waits on a client that does not read.
public struct ConnectionLimits: Sendable, Equatable {
    /// Connections open at once; past it a new one is closed as soon as it is accepted.
    public var maxConnections: Int
    /// Connections open at once from one client address, so that one client cannot take them all
    /// (a proxy in front makes every client one address: raise it there).
    public var maxConnectionsPerClient: Int
    /// A connection to which nothing could be written for this long (the client not reading, the
    /// socket's send buffer full) is closed, as nginx's `send_timeout` does: an unread response
    /// holds no memory past it. A client reading slower than about half the kernel's send buffer
    /// (autotuned, up to a few MB) per period is taken for one that does not read.
    public var writeStallSeconds: Double

    public init(maxConnections: Int = 1000, maxConnectionsPerClient: Int = 256, writeStallSeconds: Double = 60) {
        self.maxConnections = maxConnections
        self.maxConnectionsPerClient = maxConnectionsPerClient
        self.writeStallSeconds = writeStallSeconds
    }

    /// The config file's keys for these limits.
    public enum Keys: String, CodingKey, CaseIterable {
        case maxConnections = "max_connections", maxConnectionsPerClient = "max_connections_per_client"
        case writeStallSeconds = "write_stall_seconds"
    }

    /// The limits a config file sets (defaults for what it leaves out).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        let defaults = ConnectionLimits()
        self.init(maxConnections: try c.decodeIfPresent(Int.self, forKey: .maxConnections) ?? defaults.maxConnections,
                  maxConnectionsPerClient: try c.decodeIfPresent(Int.self, forKey: .maxConnectionsPerClient)
                      ?? defaults.maxConnectionsPerClient,
                  writeStallSeconds: try c.decodeIfPresent(Double.self, forKey: .writeStallSeconds) ?? defaults.writeStallSeconds)
        self = try validated()
    }

    public static var keys: Set<String> { Set(Keys.allCases.map(\.stringValue)) }

    public func validated() throws(ServerConfigError) -> ConnectionLimits {
        guard maxConnections >= 1 else { throw .invalid(path: "max_connections", reason: "must be 1 or more") }
        guard maxConnectionsPerClient >= 1 else { throw .invalid(path: "max_connections_per_client", reason: "must be 1 or more") }
        guard writeStallSeconds > 0, writeStallSeconds.isFinite else {
            throw .invalid(path: "write_stall_seconds", reason: "must be more than 0")
        }
        return self
    }
}

/// What a server's metrics learn of its connections (nothing, unless it has metrics).
public struct ConnectionObserver: Sendable {
    public var opened: @Sendable (_ open: Int) -> Void
    public var refused: @Sendable (_ reason: String) -> Void
    public var stalled: @Sendable () -> Void

    public init(opened: @escaping @Sendable (Int) -> Void, refused: @escaping @Sendable (String) -> Void,
                stalled: @escaping @Sendable () -> Void) {
        self.opened = opened
        self.refused = refused
        self.stalled = stalled
    }

    public static let none = ConnectionObserver(opened: { _ in }, refused: { _ in }, stalled: {})
}

/// The connections a server holds, by client address, shared by all its channels.
public final class ConnectionBudget: Sendable {
    let limits: ConnectionLimits
    let observer: ConnectionObserver
    private let open = Mutex<(total: Int, byClient: [String: Int])>((0, [:]))

    public init(limits: ConnectionLimits, observer: ConnectionObserver = .none) {
        self.limits = limits
        self.observer = observer
    }

    /// Takes a place for a client; false (and counted) when the server or the client has none left.
    func admit(_ client: String) -> Bool {
        let admitted = open.withLock { state -> Bool? in
            guard state.total < limits.maxConnections else { return nil }
            guard state.byClient[client, default: 0] < limits.maxConnectionsPerClient else { return false }
            state.total += 1
            state.byClient[client, default: 0] += 1
            return true
        }
        switch admitted {
        case true?: observer.opened(openConnections)
        case false?: observer.refused("client_full")
        case nil: observer.refused("server_full")
        }
        return admitted == true
    }

    func release(_ client: String) {
        open.withLock { state in
            state.total -= 1
            let left = state.byClient[client, default: 1] - 1
            state.byClient[client] = left > 0 ? left : nil
        }
        observer.opened(openConnections)
    }

    /// Connections open now.
    public var openConnections: Int { open.withLock { $0.total } }

    /// A handler for a new channel (one per connection).
    public func guardHandler() -> ConnectionGuard { ConnectionGuard(budget: self) }
}

/// Admits a connection against the budget when it is set up, gives its place back when it closes,
/// closes it when the client leaves written bytes unread for `writeStallSeconds`, and answers one
/// request at a time: the parts of a pipelined request wait here, and the socket is not read, until
/// the response before it has ended, and then a turn of the event loop more. A pipelined flood then
/// costs what one request at a time costs, instead of thousands decoded at once that its task
/// serves without ever waiting, keeping a thread from every other connection.
public final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = HTTPRequestPart
    public typealias InboundOut = HTTPRequestPart
    public typealias OutboundIn = HTTPResponsePart
    public typealias OutboundOut = HTTPResponsePart

    let budget: ConnectionBudget
    private var client: String?
    private var stall: Scheduled<Void>?
    /// Since when the channel has been unwritable (nil while writable), and the bytes then waiting.
    private var unwritable: (since: NIODeadline, buffered: Int)?
    /// Request heads passed on, and responses ended: a head waits while they differ.
    private var requestsPassed = 0
    private var responsesEnded = 0
    private var held = CircularBuffer<HTTPRequestPart>()
    private var headsHeld = 0
    private var readHeld = false
    /// The client closed its sending side while requests still waited here: told on once they
    /// have all been passed on, so each is answered before the connection winds down.
    private var inputClosedHeld: Any?
    /// Requests a client may send ahead of the responses: HTTP/1.1 allows pipelining, no real
    /// client sends more than a few, and a flood of thousands would keep an event loop busy.
    static let maxPipelined = 16

    init(budget: ConnectionBudget) { self.budget = budget }

    public func handlerAdded(context: ChannelHandlerContext) {
        let address = context.channel.remoteAddress?.ipAddress ?? "unknown"
        if budget.admit(address) {
            client = address
        } else {
            context.close(promise: nil)
        }
    }

    public func handlerRemoved(context: ChannelHandlerContext) { giveBack() }

    public func channelInactive(context: ChannelHandlerContext) {
        giveBack()
        held.removeAll()
        context.fireChannelInactive()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .some(.inputClosed) = event as? ChannelEvent, !held.isEmpty {
            inputClosedHeld = event
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if case .head = part {
            guard headsHeld < Self.maxPipelined else {
                if headsHeld == Self.maxPipelined {
                    headsHeld += 1
                    budget.observer.refused("pipelining")
                    context.close(promise: nil)
                }
                return
            }
            headsHeld += 1
        }
        held.append(part)
        deliver(context: context, outsideRead: false)
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let ended: Bool
        if case .end = unwrapOutboundIn(data) { ended = true } else { ended = false }
        context.write(data, promise: promise)
        if ended {
            responsesEnded += 1
            // On the loop's next turn: the connection's task, finding nothing to read, then waits,
            // and other connections' tasks get the thread (a task that never waits keeps it).
            context.eventLoop.assumeIsolated().execute { self.deliver(context: context, outsideRead: true) }
        }
    }

    public func read(context: ChannelHandlerContext) {
        // While parts wait, reading more would only pile more up behind them.
        if held.isEmpty { context.read() } else { readHeld = true }
    }

    /// Passes on held parts up to the next request head that must wait for a response. Parts passed
    /// outside a read are followed by a read-complete, as a read's are: the channel's async stream
    /// hands its task what it buffered only then.
    private func deliver(context: ChannelHandlerContext, outsideRead: Bool) {
        var passed = false
        while let part = held.first {
            if case .head = part {
                guard requestsPassed <= responsesEnded else { break }
                requestsPassed += 1
                headsHeld -= 1
            }
            held.removeFirst()
            context.fireChannelRead(wrapInboundOut(part))
            passed = true
        }
        if passed && outsideRead { context.fireChannelReadComplete() }
        if held.isEmpty, let event = inputClosedHeld {
            inputClosedHeld = nil
            context.fireUserInboundEventTriggered(event)
        }
        if held.isEmpty && readHeld {
            readHeld = false
            context.read()
        }
    }

    /// A response larger than the channel's high-water mark makes it unwritable and writable again
    /// once per response: that only notes the time, and one timer per connection, armed at the
    /// first stall and re-armed only while one lasts, does the checking (a timer scheduled and
    /// cancelled at every flip cost a twentieth of a cached range read's CPU).
    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            unwritable = nil
        } else if unwritable == nil {
            unwritable = (context.eventLoop.now, Self.buffered(context))
            if stall == nil { armStallCheck(context: context, in: .milliseconds(Int64(budget.limits.writeStallSeconds * 1000))) }
        }
        context.fireChannelWritabilityChanged()
    }

    /// Closes the connection if it has been unwritable for `writeStallSeconds` and the socket has
    /// taken none of the bytes that waited when that began; one that took some is watched again
    /// from there.
    private func armStallCheck(context: ChannelHandlerContext, in delay: TimeAmount) {
        stall = context.eventLoop.assumeIsolated().scheduleTask(in: delay) {
            self.stall = nil
            guard let unwritable = self.unwritable, !context.channel.isWritable else { return }
            let limit = TimeAmount.milliseconds(Int64(self.budget.limits.writeStallSeconds * 1000))
            let waited = context.eventLoop.now - unwritable.since
            if waited < limit {
                self.armStallCheck(context: context, in: limit - waited)
                return
            }
            let now = Self.buffered(context)
            if now < unwritable.buffered {
                self.unwritable = (context.eventLoop.now, now)
                self.armStallCheck(context: context, in: limit)
            } else {
                self.budget.observer.stalled()
                context.close(promise: nil)
            }
        }
    }

    /// A full close while bytes are still queued for the socket closes the output first, once
    /// they are written (NIO's full close fails queued writes). Hummingbird ends a connection that
    /// a graceful shutdown quiesced right after the last response's end, which a slow reader's
    /// socket may not have taken yet: its last bytes were lost (test_sigterm_lets_in_flight_responses_finish).
    /// A client that never reads them is still cut by the write-stall timer, which closes for real.
    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard mode == .all, context.channel.isActive, Self.buffered(context) > 0 else {
            context.close(mode: mode, promise: promise)
            return
        }
        let outputClosed = context.eventLoop.makePromise(of: Void.self)
        context.close(mode: .output, promise: outputClosed)
        outputClosed.futureResult.assumeIsolated().whenComplete { _ in context.close(mode: .all, promise: promise) }
    }

    /// Bytes written to the channel and not yet taken by the socket (Int.max when the channel
    /// cannot say: then no progress can be seen).
    private static func buffered(_ context: ChannelHandlerContext) -> Int {
        (try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? Int.max
    }

    private func giveBack() {
        stall?.cancel()
        stall = nil
        if let client {
            budget.release(client)
            self.client = nil
        }
    }
}
