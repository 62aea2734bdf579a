import Foundation

/// Runs response bodies that block on network reads (blobs in an S3 bucket) on threads of their
/// own: on the server's event loops each wait would stall every connection of that loop, and the
/// cooperative pool has only as many threads as cores.
final class BlockingTaskExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked: `jobs` is guarded by `condition`.
    private var jobs: [UnownedJob] = []
    private var head = 0
    private let condition = NSCondition()

    init(threads: Int) {
        for index in 0..<threads {
            let thread = Thread { [self] in
                while true { take().runSynchronously(on: asUnownedTaskExecutor()) }
            }
            thread.name = "cairn-blocking-\(index)"
            thread.start()
        }
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        // One waiter per job: waking them all would cost a context switch per idle thread.
        condition.signal()
        condition.unlock()
    }

    private func take() -> UnownedJob {
        condition.lock()
        defer { condition.unlock() }
        while head == jobs.count { condition.wait() }
        let job = jobs[head]
        head += 1
        if head > 1024, head * 2 > jobs.count {
            jobs.removeFirst(head)
            head = 0
        }
        return job
    }
}
