import Foundation
import Synchronization

/// Runs blocking, I/O-heavy work (file reads, fsyncs) on `jobs` dedicated threads, so it never
/// starves Swift concurrency's cooperative pool.
public enum WorkerPool {
    /// Calls `body(i)` for every i in 0..<count, each exactly once, on up to `jobs` threads; returns when all are done.
    public static func forEach(count: Int, jobs: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let next = Mutex(0)
        let group = DispatchGroup()
        for _ in 0..<max(1, min(jobs, count)) {
            group.enter()
            Thread {
                while true {
                    let index = next.withLock { value -> Int? in
                        guard value < count else { return nil }
                        defer { value += 1 }
                        return value
                    }
                    guard let index else { break }
                    body(index)
                }
                group.leave()
            }.start()
        }
        group.wait()
    }
}
