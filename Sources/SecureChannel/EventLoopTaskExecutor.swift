import NIOCore

/// A `TaskExecutor` that runs a task's jobs on one NIO event loop.
///
/// A connection's message loop (and a load-generator worker) runs on its channel's own loop thread with this
/// executor as the task's preference, instead of hopping to the global pool and back for every message: echo
/// went from about 30,000 to 40,000+ messages/s and bulk from 330 to 590 MB/s (BENCHMARKS.md).
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
