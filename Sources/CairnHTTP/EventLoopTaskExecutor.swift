import NIOCore

/// Runs a response body's loop on its connection's event loop. Writes from that thread reach the
/// channel at once, so the channel's writability (64 KiB high-water mark) stops the producer
/// before the next chunk; from another thread each write is a hop, and a fast producer could
/// queue chunks faster than the loop drains them (measured: ~1.4 MB per connection resident with
/// 200 streams, against a bound of one or two chunks this way).
public final class EventLoopTaskExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked: EventLoop is Sendable; nothing else is stored.
    public let eventLoop: any EventLoop

    public init(_ eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
