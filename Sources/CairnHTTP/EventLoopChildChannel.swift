import HummingbirdCore
import Logging
import NIOCore

/// Runs each connection's request loop (reading requests, the handlers, writing responses) on
/// the connection's own event loop rather than on the cooperative pool. A request served from
/// memory then costs no thread hop: before, each request crossed from the event loop to the pool
/// and its body back again, and the profile of a range benchmark showed the wake-ups as a tenth of
/// the node's CPU. Handlers that block (index queries, decoding, uploads) must leave the loop
/// (`OffEventLoopMiddleware`, or an executor preference of their own).
///
/// With an `ImmediateResponder`, requests it can answer at once never reach the request loop
/// (`ImmediateResponseHandler`, placed after Hummingbird's connection-state handler).
public struct EventLoopChildChannel<Base: ServerChildChannel>: ServerChildChannel {
    public typealias Value = Base.Value
    let base: Base
    let immediate: (serverName: String, respond: ImmediateResponder)?

    public init(_ base: Base, immediate: (serverName: String, respond: ImmediateResponder)? = nil) {
        self.base = base
        self.immediate = immediate
    }

    public func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        guard let immediate else { return base.setup(channel: channel, logger: logger) }
        return base.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let pipeline = channel.pipeline.syncOperations
            let state = try pipeline.handler(type: HTTPConnectionStateHandler.self)
            try pipeline.addHandler(ImmediateResponseHandler(serverName: immediate.serverName, respond: immediate.respond),
                                    position: .after(state))
            return value
        }
    }

    public func handle(value: Value, logger: Logger) async {
        await withTaskExecutorPreference(EventLoopTaskExecutor(value.channel.eventLoop)) {
            await base.handle(value: value, logger: logger)
        }
    }
}
