import NIOCore

/// A `TaskExecutor` that runs a task's jobs on one NIO event loop.
///
/// Certificate verification is `async` (swift-certificates' `Verifier`) but starts from a channel handler: with
/// this executor as the task's preference it runs on the connection's own loop thread instead of hopping to the
/// global pool and back, which cost two thread wake-ups per handshake on each side (perf, BENCHMARKS.md).
package final class EventLoopTaskExecutor: TaskExecutor {
    package let eventLoop: any EventLoop

    package init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    package func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}
