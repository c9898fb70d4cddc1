import Foundation
import NIOConcurrencyHelpers
import NIOCore
import SecureChannel
import Synchronization

/// Bytes moved by one tunnel connection, each way: written on the connection's event loop, read at its end.
final class TransferCounter: Sendable {
    private let targetBound = Atomic<Int>(0)
    private let clientBound = Atomic<Int>(0)
    func add(toTarget count: Int) { targetBound.wrappingAdd(count, ordering: .relaxed) }
    func add(toClient count: Int) { clientBound.wrappingAdd(count, ordering: .relaxed) }
    var toTarget: Int { targetBound.load(ordering: .relaxed) }
    var toClient: Int { clientBound.load(ordering: .relaxed) }
}

/// One half of a pair that joins two channels on the same event loop: what one reads, the other writes.
///
/// Backpressure: a side reads only while its partner is writable (NIO's writability follows the write buffer's
/// watermarks), so a slow reader on either end stops the other end's reads instead of growing memory.
/// Half-close: end of input on one side becomes `close(mode: .output)` on the other; a side closes fully once
/// both its directions are done. A reset or error on one side closes the other at once.
final class GlueHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Direction { case toTarget, toClient }

    private var partner: GlueHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    private var inputClosed = false
    private var outputClosed = false
    /// Whether anything was written to this side. Closing must first wait for what is queued to leave: NIO turns
    /// an output close into a full close when the input is already shut, and a full close drops whatever is still
    /// queued. Writes carry no promise (one per message would cost an allocation or three); a close that must
    /// wait writes an empty buffer with one, which completes after every write before it.
    private var wrote = false
    /// Which way the bytes this side reads travel.
    private let direction: Direction
    private let counter: TransferCounter
    private let onError: (any Error) -> Void
    private let onInactive: (Direction) -> Void

    private init(
        direction: Direction, counter: TransferCounter, onError: @escaping (any Error) -> Void,
        onInactive: @escaping (Direction) -> Void
    ) {
        self.direction = direction
        self.counter = counter
        self.onError = onError
        self.onInactive = onInactive
    }

    /// A linked pair: the first goes on the client-facing channel, the second on the target-facing one. `onInactive`
    /// hears of each side's close (with the direction that side reads), in the order they happen.
    static func pair(
        counter: TransferCounter, onError: @escaping (any Error) -> Void,
        onInactive: @escaping (Direction) -> Void = { _ in }
    ) -> (client: GlueHandler, target: GlueHandler) {
        let client = GlueHandler(direction: .toTarget, counter: counter, onError: onError, onInactive: onInactive)
        let target = GlueHandler(direction: .toClient, counter: counter, onError: onError, onInactive: onInactive)
        client.partner = target
        target.partner = client
        return (client, target)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    // MARK: Partner calls

    private func partnerWrite(_ buffer: ByteBuffer) {
        guard let context else { return }
        wrote = true
        context.write(wrapOutboundOut(buffer), promise: nil)
    }

    /// How long a closing side waits for its queued bytes to drain to a peer that may never read them.
    static let drainTimeout: TimeAmount = .seconds(5)

    /// Runs `body` once everything written so far has been written out (or failed), or after ``drainTimeout``.
    private func afterPendingWrites(_ context: ChannelHandlerContext, _ body: @escaping () -> Void) {
        guard wrote else {
            body()
            return
        }
        let lastWrite = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(capacity: 0)), promise: lastWrite)
        let once = NIOLoopBound(OnceBox(body), eventLoop: context.eventLoop)
        let timer = context.eventLoop.scheduleTask(in: Self.drainTimeout) { once.value.run() }
        lastWrite.futureResult.whenComplete { _ in
            timer.cancel()
            once.value.run()
        }
    }

    /// Runs its closure at most once.
    private final class OnceBox {
        private var body: (() -> Void)?
        init(_ body: @escaping () -> Void) { self.body = body }
        func run() {
            let body = self.body
            self.body = nil
            body?()
        }
    }

    private func partnerFlush() {
        context?.flush()
    }

    private func partnerEndOfInput() {
        guard let context, !outputClosed else { return }
        outputClosed = true
        afterPendingWrites(context) { [inputClosed] in
            if inputClosed {
                context.close(promise: nil)
            } else {
                context.close(mode: .output, promise: nil)
            }
        }
    }

    private func partnerClosed(reset: Bool) {
        guard let context else { return }
        guard reset else {
            afterPendingWrites(context) { context.close(promise: nil) }
            return
        }
        // Propagate a reset as a reset: below TLS (no close_notify) and without lingering, so the peer sees RST.
        if let abort = try? context.pipeline.syncOperations.handler(type: AbortHandler.self) {
            abort.abort()
        } else if let provider = context.channel as? any SocketOptionProvider {
            let channel = context.channel
            provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in channel.close(promise: nil) }
        } else {
            context.close(promise: nil)
        }
    }

    private var partnerWritable: Bool {
        context?.channel.isWritable ?? false
    }

    private func partnerBecameWritable() {
        if pendingRead {
            pendingRead = false
            context?.read()
        }
    }

    // MARK: Channel events

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        switch direction {
        case .toTarget: counter.add(toTarget: buffer.readableBytes)
        case .toClient: counter.add(toClient: buffer.readableBytes)
        }
        partner?.partnerWrite(buffer)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.partnerFlush()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            inputClosed = true
            partner?.partnerFlush()
            partner?.partnerEndOfInput()
            if outputClosed { afterPendingWrites(context) { context.close(promise: nil) } }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        onInactive(direction)
        partner?.partnerClosed(reset: false)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        onError(error)
        let reset = (error as? IOError)?.errnoCode == ECONNRESET
        partner?.partnerClosed(reset: reset)
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.partnerBecameWritable() }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if partner?.partnerWritable ?? false {
            context.read()
        } else {
            pendingRead = true
        }
    }
}
