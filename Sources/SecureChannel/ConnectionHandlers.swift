import Foundation
import NIOCore
import NIOSSL
import NIOTLS

/// Closes a connection whose TLS handshake does not finish in time (NIOSSL has no such option).
final class HandshakeTimeoutHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let timeout: TimeAmount
    private let record: ConnectionRecord
    private var task: Scheduled<Void>?

    init(timeout: TimeAmount, record: ConnectionRecord) {
        self.timeout = timeout
        self.record = record
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context)
        context.fireChannelActive()
    }

    private func arm(_ context: ChannelHandlerContext) {
        guard task == nil else { return }
        let record = self.record
        let seconds = Double(timeout.nanoseconds) / 1e9
        let channel = context.channel
        task = context.eventLoop.scheduleTask(in: timeout) {
            record.noteRefusal(.handshakeTimeout)
            record.noteClose("handshake timeout: not finished within \(seconds.formatted()) s")
            channel.close(promise: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event {
            task?.cancel()
            task = nil
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        task?.cancel()
        context.fireChannelInactive()
    }
}

/// Closes a connection after `timeout` with nothing read and nothing flushed ("idle timeout: nothing for N s").
///
/// NIO's `IdleStateHandler` does the same with a promise and a callback per write; this one notes the time at the
/// end of each read and at each flush, and its one timer looks at it when it fires. On a TLS connection it sits
/// after the TLS handler and is added once the handshake is done (the handshake has its own timeout); there it also
/// records the close reason of an error, which ``HandshakeEventsHandler`` does until then.
final class IdleTimeoutHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    typealias OutboundIn = NIOAny

    private let timeout: TimeAmount
    private let record: ConnectionRecord
    private let recordsErrors: Bool
    private var lastActivity = NIODeadline.uptimeNanoseconds(0)
    private var reading = false
    private var timer: Scheduled<Void>?

    init(timeout: TimeAmount, record: ConnectionRecord, recordsErrors: Bool = false) {
        self.timeout = timeout
        self.record = record
        self.recordsErrors = recordsErrors
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        reading = true
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if reading {
            reading = false
            lastActivity = context.eventLoop.now
        }
        context.fireChannelReadComplete()
    }

    func flush(context: ChannelHandlerContext) {
        lastActivity = context.eventLoop.now
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if recordsErrors {
            record.tlsFailed = true  // read by FatalCloseHandler when the TLS handler then closes
            record.noteClose(ErrorDescription.describe(error, record: record, handshakeCompleted: true))
        }
        context.fireErrorCaught(error)
    }

    private func start(_ context: ChannelHandlerContext) {
        guard timer == nil else { return }
        lastActivity = context.eventLoop.now
        arm(context, at: lastActivity + timeout)
    }

    private func arm(_ context: ChannelHandlerContext, at deadline: NIODeadline) {
        timer = context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(deadline: deadline) {
            self.fire(context)
        }
    }

    private func fire(_ context: ChannelHandlerContext) {
        timer = nil
        guard context.channel.isActive else { return }
        let due = lastActivity + timeout
        if due > context.eventLoop.now {
            arm(context, at: due)
            return
        }
        let seconds = Double(timeout.nanoseconds) / 1e9
        record.noteClose("idle timeout: nothing for \(seconds.formatted()) s")
        context.close(promise: nil)
    }
}

/// Completes the handshake promise, records the TLS version, and turns TLS errors into a close reason.
final class HandshakeEventsHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    let record: ConnectionRecord
    let handshake: EventLoopPromise<Void>
    /// When set, the idle timer starts once the handshake completed (the handshake has its own timeout).
    let idleTimeout: TimeAmount?
    private var completed = false

    init(record: ConnectionRecord, handshake: EventLoopPromise<Void>, idleTimeout: TimeAmount? = nil) {
        self.record = record
        self.handshake = handshake
        self.idleTimeout = idleTimeout
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case TLSUserEvent.handshakeCompleted = event else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        record.tlsVersion = try? context.pipeline.syncOperations.nioSSL_tlsVersion()
        completed = true
        handshake.succeed()
        context.fireUserInboundEventTriggered(event)
        // A server's connection: from here the idle handler also records errors, and this one leaves the pipeline
        // (one handler fewer for every message).
        if let idleTimeout {
            let idle = IdleTimeoutHandler(timeout: idleTimeout, record: record, recordsErrors: true)
            if (try? context.pipeline.syncOperations.addHandler(idle, position: .after(self))) != nil {
                context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        record.tlsFailed = true  // read by FatalCloseHandler when the TLS handler then closes
        let reason = ErrorDescription.describe(error, record: record, handshakeCompleted: completed)
        if !completed, reason == ErrorDescription.noClientCertificate { record.noteRefusal(.noCertificate) }
        record.noteClose(reason)
        if !completed {
            completed = true
            handshake.fail(SecureChannelError(ErrorDescription.code(error, record: record), reason))
        }
        context.fireErrorCaught(error)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // A channel that never became active (connect failed) removes its handlers without channelInactive.
        if !completed {
            completed = true
            handshake.fail(
                SecureChannelError(.connectionClosed, record.closeReason ?? "connection closed before the handshake"))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !completed {
            completed = true
            record.noteClose("closed before the handshake finished")
            handshake.fail(SecureChannelError(.connectionClosed, record.closeReason ?? "connection closed"))
        }
        context.fireChannelInactive()
    }
}

/// Holds back a TCP end-of-input that arrives while the TLS handshake (with our asynchronous verification) is
/// still running, and passes it on once the handshake is done. Without it NIOSSL treats such an EOF as fatal,
/// which kills tunnels whose clients write, half-close and wait for the reply. Sits before the TLS handler, on
/// channels that allow remote half-closure.
final class DeferredEndOfInputHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let handshake: EventLoopFuture<Void>
    private var done = false
    private var deferred = false

    init(handshake: EventLoopFuture<Void>) {
        self.handshake = handshake
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        handshake.whenComplete { _ in
            let (handler, context) = loopBound.value
            handler.done = true
            if handler.deferred {
                handler.deferred = false
                context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
            }
            // Its work is done: every later read passes one handler fewer.
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event, !done {
            deferred = true
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}

/// Sits at the head of a TLS pipeline so that a connection can be aborted below TLS: SO_LINGER 0 and a close
/// that does not pass through NIOSSL (no close_notify, no wait for the peer's), so the peer sees a reset. Tunnels
/// use it to pass a reset on as a reset.
package final class AbortHandler: ChannelOutboundHandler {
    package typealias OutboundIn = NIOAny
    private var context: ChannelHandlerContext?

    package init() {}

    package func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// Resets the connection. Call on the channel's event loop.
    package func abort() {
        guard let context else { return }
        let channel = context.channel
        guard let provider = channel as? any SocketOptionProvider else {
            context.close(promise: nil)
            return
        }
        provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in
            context.close(promise: nil)
        }
    }
}
