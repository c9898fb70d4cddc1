import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// Replies to one message from a verified peer. The message excludes its framing; so must the reply.
public typealias MessageHandler = @Sendable (ByteBuffer, PeerIdentity) async throws -> ByteBuffer

/// An mTLS server: requires and verifies a client certificate, applies the access rules, then passes each
/// message to the handler and sends its reply, in order. One failing client never affects another.
///
/// Run it as a ServiceLifecycle `Service`: graceful shutdown stops accepting, lets in-flight replies finish
/// (bounded by the grace period) and closes the rest.
public final class MessageServer: Service, MaterialReloading, Sendable {
    /// The configuration it was created with.
    public let configuration: MessageServerConfiguration
    private let handler: Handler
    private let listener: Acceptor

    /// How messages are answered: by an async handler in a task per connection, or on the event loop.
    private enum Handler {
        case async(MessageHandler)
        case onEventLoop(SynchronousMessageHandler)
    }
    private var logger: Logger { listener.logger }

    /// Creates a server; throws a one-line ``SecureChannelError`` for an unusable configuration.
    public convenience init(
        configuration: MessageServerConfiguration, logger: Logger,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, handler: @escaping MessageHandler
    ) throws {
        try self.init(configuration: configuration, logger: logger, group: group, handler: .async(handler))
    }

    /// Creates a server whose handler answers each message on the connection's event loop, without suspending
    /// (no task per connection: less CPU per message and less memory per idle connection). `replying` must not
    /// block.
    public convenience init(
        configuration: MessageServerConfiguration, logger: Logger,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        replying: @escaping SynchronousMessageHandler
    ) throws {
        try self.init(configuration: configuration, logger: logger, group: group, handler: .onEventLoop(replying))
    }

    private init(
        configuration: MessageServerConfiguration, logger: Logger, group: any EventLoopGroup, handler: Handler
    ) throws {
        try configuration.validate()
        self.configuration = configuration
        self.handler = handler
        listener = try Acceptor(
            settings: configuration.acceptorSettings, store: try configuration.makeStore(), logger: logger,
            group: group)
    }

    /// The address the server listens on, once bound (port 0 resolved to the real port).
    public func listeningAddress() async throws -> SocketAddress {
        try await listener.listeningAddress()
    }

    /// Listening and not shutting down (for health checks).
    public var isReady: Bool { listener.isReady }

    /// Reads the configured files again (see ``MessageServerConfiguration/reloadFiles``); on failure keeps the
    /// current material and logs why. Returns whether the new material is in use.
    /// Whether a watched file changed since the last look (``FileWatchService`` asks).
    public var watchedFilesChanged: Bool { listener.watchedFilesChanged }

    @discardableResult
    public func reload(reason: String = "reload requested") -> Bool {
        listener.reload(reason: reason)
    }

    /// Binds, accepts and serves until graceful shutdown or cancellation.
    public func run() async throws {
        let framing = configuration.framing
        let limit = configuration.maximumMessageBytes
        switch handler {
        case .async:
            try await listener.run(
                configure: { pipeline, _ in try framing.addHandlers(to: pipeline, maximumMessageBytes: limit) },
                serve: { channel, record in await self.serve(channel, record: record) })
        case .onEventLoop(let replying):
            let context = MessageReplyHandler.Context(
                handler: replying, framing: framing, limit: limit, listener: listener, logger: logger)
            try await listener.run(
                configure: { pipeline, record in
                    try framing.addHandlers(to: pipeline, maximumMessageBytes: limit, limitEachMessage: false)
                    try pipeline.addHandler(MessageReplyHandler(context, record: record))
                },
                service: .onEventLoop { channel, _ in
                    // Reads flow from here; the handler answers them, with no task per connection.
                    channel.setOption(.autoRead, value: true).whenFailure { _ in channel.close(promise: nil) }
                })
        }
    }

    private func serve(_ channel: any Channel, record: ConnectionRecord) async {
        let async: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            async = try await channel.eventLoop.submit {
                let async = try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                try channel.syncOptions?.setOption(.autoRead, value: true)
                return async
            }.get()
        } catch {
            // NIOSSL reads by itself during the handshake, so a bad client can fail before we got here.
            record.noteClose("closed during the handshake")
            channel.close(promise: nil)
            return
        }
        // Reads only flow while the inbound stream is iterated, so the loop starts at once; the TLS layer
        // delivers no message before the handshake (and the verification that sets the identity) completed.
        do {
            try await async.executeThenClose { inbound, outbound in
                try await self.exchange(inbound: inbound, outbound: outbound, channel: channel, record: record)
            }
        } catch {
            record.noteClose(
                ErrorDescription.describe(error, record: record, handshakeCompleted: record.identity != nil))
        }
    }

    private func exchange(
        inbound: NIOAsyncChannelInboundStream<ByteBuffer>, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>,
        channel: any Channel, record: ConnectionRecord
    ) async throws {
        let framing = configuration.framing
        let limit = configuration.maximumMessageBytes
        do {
            for try await message in inbound {
                if record.identity == nil {
                    try await listener.verifyResumedSession(channel: channel, record: record)
                }
                guard let identity = record.identity else { return }
                guard message.readableBytes <= limit else {
                    try await refuseTooLong(channel: channel, record: record)
                    return
                }
                guard case .async(let handler) = handler, record.beginReply() else { return }
                let reply: ByteBuffer
                do {
                    reply = try await handler(message, identity)
                } catch {
                    logger.error(
                        "handler failed for \(record.remote): \(error)",
                        metadata: ["event": "handler-failed", "peer": "\(record.remote)"])
                    reply = ByteBuffer(string: "ERR internal error")
                }
                try await outbound.write(framing.frame(reply, allocator: channel.allocator))
                if listener.endReply(record) {
                    record.noteClose("server shutting down")
                    return
                }
            }
            record.noteClose("closed by peer")
        } catch is ByteToMessageDecoderError.PayloadTooLargeError {
            try await refuseTooLong(channel: channel, record: record)
        }
    }

    /// Replies `ERR …` to an over-long message and closes: the write completes before the close.
    private func refuseTooLong(channel: any Channel, record: ConnectionRecord) async throws {
        let limit = configuration.maximumMessageBytes
        record.noteClose("message too long: over \(limit) bytes")
        let error = ByteBuffer(string: "ERR message too long: the limit is \(limit) bytes")
        try await channel.writeAndFlush(configuration.framing.frame(error, allocator: channel.allocator)).get()
    }

}
