import CairnStore
import Foundation

/// Runs response bodies that block on network reads (blobs in an S3 bucket) on threads of their
/// own: on the server's event loops each wait would stall every connection of that loop, and the
/// cooperative pool has only as many threads as cores.
final class BlockingTaskExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked: the queue is thread-safe and nothing else is stored.
    private let jobs = BlockingQueue<UnownedJob>(capacity: Int.max)

    init(threads: Int) {
        for index in 0..<threads {
            let thread = Thread { [jobs] in
                while true {
                    for job in jobs.takeBatch(limit: 1) { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
                }
            }
            thread.name = "cairn-blocking-\(index)"
            thread.start()
        }
    }

    func enqueue(_ job: consuming ExecutorJob) { jobs.put(UnownedJob(job)) }
}
