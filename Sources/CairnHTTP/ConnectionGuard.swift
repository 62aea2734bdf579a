import NIOCore
import Synchronization

/// How many connections a server keeps, and how long it waits on a client that does not read.
public struct ConnectionLimits: Sendable, Equatable {
    /// Connections open at once; past it a new one is closed as soon as it is accepted.
    public var maxConnections: Int
    /// Connections open at once from one client address, so that one client cannot take them all
    /// (a proxy in front makes every client one address: raise it there).
    public var maxConnectionsPerClient: Int
    /// A connection whose client has not taken what was written for this long (the socket's send
    /// buffer full) is closed: an unread response or a pipelined flood holds no memory past it.
    public var writeStallSeconds: Double

    public init(maxConnections: Int = 1000, maxConnectionsPerClient: Int = 100, writeStallSeconds: Double = 30) {
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
/// and closes it when the client leaves written bytes unread for `writeStallSeconds`. Passes every
/// message through unchanged.
public final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = NIOAny
    public typealias InboundOut = NIOAny
    public typealias OutboundIn = NIOAny
    public typealias OutboundOut = NIOAny

    let budget: ConnectionBudget
    private var client: String?
    private var stall: Scheduled<Void>?

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
        context.fireChannelInactive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) { context.fireChannelRead(data) }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        context.write(data, promise: promise)
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            stall?.cancel()
            stall = nil
        } else if stall == nil {
            let seconds = budget.limits.writeStallSeconds
            let channel = context.channel
            let stalled = budget.observer.stalled
            stall = context.eventLoop.scheduleTask(in: .milliseconds(Int64(seconds * 1000))) {
                stalled()
                channel.close(promise: nil)
            }
        }
        context.fireChannelWritabilityChanged()
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
