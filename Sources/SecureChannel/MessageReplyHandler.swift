import Logging
import NIOCore

/// Replies to one message from a verified peer, on the connection's event loop, without suspending. The message
/// excludes its framing; so must the reply. It must not block: it runs on the event loop that serves the connection.
public typealias SynchronousMessageHandler = @Sendable (ByteBuffer, PeerIdentity) throws -> ByteBuffer

/// A ``MessageServer`` connection served by a ``SynchronousMessageHandler``: each message is answered where it was
/// read, with no task and no async stream between the socket and the reply (the same rules as the async path:
/// the limit, the busy mark for a graceful drain, one failing handler call answered `ERR internal error`).
/// Reading pauses while the peer does not take our replies (the channel is not writable), so a client that sends
/// without reading cannot make the server buffer without bound.
final class MessageReplyHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct Context: Sendable {
        let handler: SynchronousMessageHandler
        let framing: Framing
        let limit: Int
        let listener: Acceptor
        let logger: Logger
    }

    private let server: Context
    private let record: ConnectionRecord
    /// The verified peer, read from the record once: handing the handler a boxed value costs one retain a message,
    /// not a copy of every field.
    private final class Peer {
        let identity: PeerIdentity
        init(_ identity: PeerIdentity) { self.identity = identity }
    }
    private var peer: Peer?
    /// Messages read before a resumed session's certificate was verified (it is, once, before any is answered).
    private var waiting: [ByteBuffer] = []
    private var verifying = false
    private var pausedForWritability = false

    init(_ server: Context, record: ConnectionRecord) {
        self.server = server
        self.record = record
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let message = unwrapInboundIn(data)
        if waiting.isEmpty, !verifying, answer(message, context: context) { return }
        waiting.append(message)
        verifyResumedSession(context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, pausedForWritability {
            pausedForWritability = false
            context.channel.setOption(.autoRead, value: true).whenFailure { _ in }
        }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is ByteToMessageDecoderError.PayloadTooLargeError {
            refuseTooLong(context: context)
            return
        }
        record.noteClose(
            ErrorDescription.describe(error, record: record, handshakeCompleted: record.identity != nil))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        record.noteClose("closed by peer")
        context.fireChannelInactive()
    }

    /// Answers one message; false, with nothing done, while the peer is not verified yet (a resumed session).
    private func answer(_ message: ByteBuffer, context: ChannelHandlerContext) -> Bool {
        guard context.channel.isActive else { return true }
        if peer == nil {
            guard let identity = record.identity else { return false }  // nothing, not even a refusal, before
            peer = Peer(identity)
        }
        guard message.readableBytes <= server.limit else {
            refuseTooLong(context: context)
            return true
        }
        guard let peer, record.beginReply() else { return false }
        let reply: ByteBuffer
        do {
            reply = try server.handler(message, peer.identity)
        } catch {
            server.logger.error(
                "handler failed for \(record.remote): \(error)",
                metadata: ["event": "handler-failed", "peer": "\(record.remote)"])
            reply = ByteBuffer(string: "ERR internal error")
        }
        let framed = wrapOutboundOut(server.framing.frame(reply, allocator: context.channel.allocator))
        if server.listener.endReply(record) {
            record.noteClose("server shutting down")
            let channel = context.channel
            context.writeAndFlush(framed).whenComplete { _ in channel.close(promise: nil) }
            return true
        }
        context.write(framed, promise: nil)
        if !context.channel.isWritable, !pausedForWritability {
            pausedForWritability = true
            context.channel.setOption(.autoRead, value: false).whenFailure { _ in }
        }
        return true
    }

    /// A resumed TLS session skipped the verification callback: verify its certificate now (it may hop to a task),
    /// holding the messages read meanwhile; then answer them, or close.
    private func verifyResumedSession(context: ChannelHandlerContext) {
        guard !verifying else { return }
        verifying = true
        context.channel.setOption(.autoRead, value: false).whenFailure { _ in }
        let channel = context.channel
        let listener = server.listener
        let record = record
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        Task {
            try? await listener.verifyResumedSession(channel: channel, record: record)
            channel.eventLoop.execute {
                let (handler, context) = bound.value
                handler.verifying = false
                guard record.identity != nil else {
                    context.close(promise: nil)
                    return
                }
                let held = handler.waiting
                handler.waiting = []
                for message in held where !handler.answer(message, context: context) {
                    context.close(promise: nil)
                    return
                }
                context.flush()
                if !handler.pausedForWritability {
                    context.channel.setOption(.autoRead, value: true).whenFailure { _ in }
                }
            }
        }
    }

    /// Replies `ERR …` to an over-long message and closes once the reply is written.
    private func refuseTooLong(context: ChannelHandlerContext) {
        record.noteClose("message too long: over \(server.limit) bytes")
        let error = ByteBuffer(string: "ERR message too long: the limit is \(server.limit) bytes")
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(server.framing.frame(error, allocator: channel.allocator)))
            .whenComplete { _ in channel.close(promise: nil) }
    }
}
