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
    private let framing: Framing
    private let maximumMessageBytes: Int
    private let timeout: TimeAmount
    private let record: ConnectionRecord

    private init(channel: any Channel, replies: ReplyHandler, record: ConnectionRecord, framing: Framing,
                 maximumMessageBytes: Int, timeout: TimeAmount, server: PeerIdentity) {
        self.channel = channel
        self.replies = replies
        self.record = record
        self.framing = framing
        self.maximumMessageBytes = maximumMessageBytes
        self.timeout = timeout
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
        try await connect(host: configuration.host, port: configuration.port, framing: configuration.framing,
                          maximumMessageBytes: configuration.maximumMessageBytes, timeout: configuration.timeout,
                          setup: setup, group: group)
    }

    /// Connects with `setup`, or without TLS when it is nil: only for the load generator's `--plaintext`, which
    /// measures the plaintext entrance of a tunnel or an echo backend. Nothing is authenticated then.
    package static func connect(
        host: String, port: Int, framing: Framing, maximumMessageBytes: Int, timeout: TimeAmount, setup: TLSClientSetup?,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> MessageClient {
        let record = ConnectionRecord(remote: nil)
        let replies = ReplyHandler(record: record)  // touched only on the channel's loop once added
        let channel: any Channel
        do {
            let bootstrap = ClientBootstrap(group: group)
                .connectTimeout(timeout)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try setup?.addHandlers(to: channel, record: record)
                        let pipeline = channel.pipeline.syncOperations
                        try framing.addHandlers(to: pipeline, maximumMessageBytes: maximumMessageBytes)
                        try pipeline.addHandler(replies)
                    }
                }
            if let address = try? SocketAddress(ipAddress: host, port: port) {
                channel = try await bootstrap.connect(to: address).get()  // an IP literal needs no resolver round
            } else {
                channel = try await bootstrap.connect(host: host, port: port).get()
            }
        } catch {
            throw SecureChannelError(.connectionFailed, "cannot connect to \(host):\(port): \(TLSClientSetup.connectText(error))")
        }
        let server = setup == nil ? PeerIdentity.unauthenticated : try await TLSClientSetup.awaitVerifiedServer(channel, record: record)
        return MessageClient(channel: channel, replies: replies, record: record, framing: framing,
                             maximumMessageBytes: maximumMessageBytes, timeout: timeout, server: server)
    }

    /// Sends one message and waits for its reply (at most the configured timeout).
    public func send(_ message: ByteBuffer) async throws -> ByteBuffer {
        if framing == .lines && LineFrameDecoder.newlineOffset(in: message) != nil {
            throw SecureChannelError(.messageTooLong, "a message cannot contain a newline with --framing lines; use --framing length")
        }
        guard message.readableBytes <= maximumMessageBytes else {
            throw SecureChannelError(.messageTooLong, "the message is \(message.readableBytes) bytes; the limit is \(maximumMessageBytes)")
        }
        let promise = channel.eventLoop.makePromise(of: ByteBuffer.self)
        let framed = framing.frame(message, allocator: channel.allocator)
        let channel = self.channel, replies = self.replies, record = self.record
        channel.eventLoop.execute {
            replies.enqueue(promise)
            channel.writeAndFlush(framed, promise: nil)
        }
        let timeout = self.timeout
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
