import Hummingbird
import NIOCore

/// Per-request state: Hummingbird's core storage plus the peer address for the audit log.
public struct NodeRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let peer: String?
    /// The port the connection arrived on (DICOMweb URLs name it when the Host header does not).
    let localPort: Int?
    /// The connection's event loop, where response bodies are produced (see `EventLoopTaskExecutor`).
    let eventLoop: (any EventLoop)?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        peer = source.channel.remoteAddress?.ipAddress
        localPort = source.channel.localAddress?.port
        eventLoop = source.channel.eventLoop
    }
}
