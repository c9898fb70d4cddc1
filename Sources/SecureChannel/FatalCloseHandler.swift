import NIOCore

/// The close discipline of a TLS server connection. Sits just before (on the socket side of) the TLS handler and
/// turns its close into: the alert flushed, a FIN (shutdown of the write side), a short bounded drain of what the
/// peer still sends, then the close.
///
/// Without it two things go wrong (both seen with tlsfuzzer and raw sockets, RFC 8446 §6.2): after a record that
/// fails to decrypt or is too long, NIOSSL closes before it writes the `bad_record_mac` / `record_overflow` alert
/// BoringSSL produced (it writes pending output at the end of the read, which the close came before); and after a
/// handshake alert the socket closes while the client's flight is still arriving, so the kernel answers the
/// unread bytes with a TCP reset that destroys the alert at the client. Clean closes (close_notify, idle, shutdown)
/// pass straight through: the drain would only add work to every connection.
final class FatalCloseHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// How long what the peer still sends is read and dropped after our FIN; a peer that closes ends it sooner.
    static let drainTime: TimeAmount = .seconds(1)

    private enum State {
        case open
        /// Our FIN is out (or about to be); reads are dropped until the peer closes or the time is up.
        case draining(promise: EventLoopPromise<Void>?, timer: Scheduled<Void>?)
        case closed
    }

    private var state = State.open
    private let record: ConnectionRecord

    /// `record` tells whether the TLS layer failed (set by ``HandshakeEventsHandler``, which sees the error before
    /// the TLS handler closes): only such a close is held; a clean close passes at once.
    init(record: ConnectionRecord) {
        self.record = record
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .open = state else { return }  // draining: the peer's leftovers are dropped
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // Always passed on: at the end of a read NIOSSL writes what BoringSSL produced, the alert included.
        context.fireChannelReadComplete()
        if case .draining = state { context.read() }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .draining = state, case ChannelEvent.inputClosed = event {
            finish(context)  // the peer closed its side: nothing more to drain
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .draining(let promise, let timer) = state {
            timer?.cancel()
            promise?.succeed()
        }
        state = .closed
        context.fireChannelInactive()
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard mode == .all, case .open = state, context.channel.isActive, record.tlsFailed else {
            if case .draining(let held, _) = state, mode == .all {
                // A second close while draining joins the first.
                if let promise { held?.futureResult.cascade(to: promise) ?? promise.succeed() }
                return
            }
            context.close(mode: mode, promise: promise)
            return
        }
        state = .draining(promise: promise, timer: nil)
        // Let the current read finish first: the alert of a failed read is written at its channelReadComplete.
        let loop = context.eventLoop.assumeIsolated()
        loop.execute {
            guard case .draining(let promise, nil) = self.state else { return }
            context.flush()
            context.close(mode: .output, promise: nil)  // queued behind the pending writes: alert, then FIN
            let timer = loop.scheduleTask(in: Self.drainTime) { self.finish(context) }
            self.state = .draining(promise: promise, timer: timer)
            context.read()
        }
    }

    private func finish(_ context: ChannelHandlerContext) {
        guard case .draining(let promise, let timer) = state else { return }
        timer?.cancel()
        state = .closed
        context.close(mode: .all, promise: promise)
    }
}
