import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import SecureChannelPKI

/// An mTLS client: verifies the server's certificate and name, presents our certificate, sends messages and
/// returns the replies in order.
public final class MessageClient: Sendable {
    /// The server's verified identity.
    public let server: PeerIdentity
    /// Negotiated TLS parameters.
    public let session: SessionInfo
    private let channel: any Channel
    private let replies: ReplyHandler
    private let configuration: MessageClientConfiguration
    private let record: ConnectionRecord

    private init(channel: any Channel, replies: ReplyHandler, record: ConnectionRecord, configuration: MessageClientConfiguration,
                 server: PeerIdentity) {
        self.channel = channel
        self.replies = replies
        self.record = record
        self.configuration = configuration
        self.server = server
        self.session = record.session
    }

    /// Connects, completes the handshake and verifies the server. Errors are one-line ``SecureChannelError``s.
    public static func connect(
        _ configuration: MessageClientConfiguration, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> MessageClient {
        try await connect(configuration, setup: try TLSClientSetup(configuration), group: group)
    }

    /// Connects with a prepared TLS context (the load generator builds it once for many handshakes).
    package static func connect(
        _ configuration: MessageClientConfiguration, setup: TLSClientSetup,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> MessageClient {
        let record = ConnectionRecord(remote: nil)
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(configuration.timeout)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try setup.addHandlers(to: channel, record: record)
                        let pipeline = channel.pipeline.syncOperations
                        try configuration.framing.addHandlers(to: pipeline, maximumMessageBytes: configuration.maximumMessageBytes)
                        try pipeline.addHandler(ReplyHandler(record: record))
                    }
                }
                .connect(host: configuration.host, port: configuration.port).get()
        } catch {
            throw SecureChannelError(.connectionFailed,
                "cannot connect to \(configuration.host):\(configuration.port): \(TLSClientSetup.connectText(error))")
        }
        let replies = try await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.handler(type: ReplyHandler.self)
        }.get()
        let server = try await TLSClientSetup.awaitVerifiedServer(channel, record: record)
        return MessageClient(channel: channel, replies: replies, record: record, configuration: configuration, server: server)
    }

    /// Sends one message and waits for its reply (at most the configured timeout).
    public func send(_ message: ByteBuffer) async throws -> ByteBuffer {
        if configuration.framing == .lines && message.readableBytesView.contains(UInt8(ascii: "\n")) {
            throw SecureChannelError(.messageTooLong, "a message cannot contain a newline with --framing lines; use --framing length")
        }
        guard message.readableBytes <= configuration.maximumMessageBytes else {
            throw SecureChannelError(.messageTooLong, "the message is \(message.readableBytes) bytes; the limit is \(configuration.maximumMessageBytes)")
        }
        let promise = channel.eventLoop.makePromise(of: ByteBuffer.self)
        let framed = configuration.framing.frame(message, allocator: channel.allocator)
        let channel = self.channel, replies = self.replies, record = self.record
        channel.eventLoop.execute {
            replies.enqueue(promise)
            channel.writeAndFlush(framed, promise: nil)
        }
        let timeout = configuration.timeout
        let timer = channel.eventLoop.scheduleTask(in: timeout) {
            record.noteClose("no reply within \(Double(timeout.nanoseconds) / 1e9) s")
            replies.failAll(SecureChannelError(.timeout, "no reply within \(Double(timeout.nanoseconds) / 1e9) s; is the server overloaded?"))
            channel.close(promise: nil)
        }
        defer { timer.cancel() }
        return try await promise.futureResult.get()
    }

    /// Sends a UTF-8 string and returns the reply as a string.
    public func send(_ text: String) async throws -> String {
        String(buffer: try await send(ByteBuffer(string: text)))
    }

    /// Returns once the connection is closed, by either side.
    public func waitUntilClosed() async {
        try? await channel.closeFuture.get()
    }

    /// Closes the connection (with TLS close_notify).
    public func close() async {
        try? await channel.close()
    }

}

/// Matches replies to requests in order; fails every pending request with a clear reason when the connection
/// breaks (including a TLS 1.3 rejection of our certificate, which only shows on the first read).
final class ReplyHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer

    // Only touched on the channel's event loop.
    private var pending: [EventLoopPromise<ByteBuffer>] = []
    private var failure: SecureChannelError?
    private let record: ConnectionRecord

    init(record: ConnectionRecord) {
        self.record = record
    }

    func enqueue(_ promise: EventLoopPromise<ByteBuffer>) {
        if let failure {
            promise.fail(failure)
        } else {
            pending.append(promise)
        }
    }

    func failAll(_ error: SecureChannelError) {
        if failure == nil { failure = error }
        let waiting = pending
        pending = []
        for promise in waiting { promise.fail(failure ?? error) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let reply = unwrapInboundIn(data)
        guard !pending.isEmpty else { return }
        pending.removeFirst().succeed(reply)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let reason = ErrorDescription.describe(error, record: record, handshakeCompleted: true)
        let code: SecureChannelError.Code = reason.contains("rejected our certificate") ? .clientCertificateRejected : .connectionClosed
        let text = code == .clientCertificateRejected ? reason.replacingOccurrences(of: "the peer rejected", with: "the server rejected") : reason
        failAll(SecureChannelError(code, text))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(SecureChannelError(.connectionClosed, "the server closed the connection before replying"))
        context.fireChannelInactive()
    }
}
