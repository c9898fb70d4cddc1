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
    /// The framed request/reply exchange over the TLS channel.
    package let exchange: FramedExchange

    /// What we can check of our own certificate when the server rejects it.
    private let material: TLSMaterial

    private init(exchange: FramedExchange, server: PeerIdentity, material: TLSMaterial) {
        self.exchange = exchange
        self.server = server
        self.session = exchange.record.session
        self.material = material
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
        let exchange = try await FramedExchange.connect(
            host: configuration.host, port: configuration.port, framing: configuration.framing,
            maximumMessageBytes: configuration.maximumMessageBytes, timeout: configuration.timeout, record: record,
            group: group
        ) { channel in try setup.addHandlers(to: channel, record: record) }
        let material = TLSMaterial(
            identity: configuration.identity, trust: configuration.trust, revocation: configuration.revocation)
        let server: PeerIdentity
        do {
            server = try await TLSClientSetup.awaitVerifiedServer(exchange.channel, record: record)
        } catch let error as SecureChannelError where error.code == .clientCertificateRejected {
            throw SecureChannelError(error.code, error.message + "; " + OwnCertificateCheck.diagnose(material))
        }
        return MessageClient(exchange: exchange, server: server, material: material)
    }

    /// Sends one message and waits for its reply (at most the configured timeout). When the server turns our
    /// certificate down (TLS 1.3 says so only after the handshake), the error adds what we can see ourselves.
    public func send(_ message: ByteBuffer) async throws -> ByteBuffer {
        do {
            return try await exchange.send(message)
        } catch let error as SecureChannelError where error.code == .clientCertificateRejected {
            throw SecureChannelError(error.code, error.message + "; " + OwnCertificateCheck.diagnose(material))
        }
    }

    /// Sends a UTF-8 string and returns the reply as a string.
    public func send(_ text: String) async throws -> String {
        String(buffer: try await send(ByteBuffer(string: text)))
    }

    /// Returns once the connection is closed, by either side.
    public func waitUntilClosed() async {
        await exchange.waitUntilClosed()
    }

    /// Closes the connection (with TLS close_notify).
    public func close() async {
        await exchange.close()
    }
}

/// Framed requests and in-order replies over a connected channel, whatever lies beneath (TLS for
/// ``MessageClient``; the load generator also measures plaintext entrances with it).
package final class FramedExchange: Sendable {
    let channel: any Channel
    let replies: ReplyHandler
    let record: ConnectionRecord
    private let framing: Framing
    private let maximumMessageBytes: Int
    private let timeout: TimeAmount

    private init(
        channel: any Channel, replies: ReplyHandler, record: ConnectionRecord, framing: Framing,
        maximumMessageBytes: Int, timeout: TimeAmount
    ) {
        self.channel = channel
        self.replies = replies
        self.record = record
        self.framing = framing
        self.maximumMessageBytes = maximumMessageBytes
        self.timeout = timeout
    }

    /// Connects to `host:port`; `transport` adds what lies beneath the framing (TLS) to the new channel, on its
    /// event loop. Errors are one-line ``SecureChannelError``s.
    package static func connect(
        host: String, port: Int, framing: Framing, maximumMessageBytes: Int, timeout: TimeAmount,
        record: ConnectionRecord, group: any EventLoopGroup,
        transport: @escaping @Sendable (any Channel) throws -> Void = { _ in }
    ) async throws -> FramedExchange {
        let replies = ReplyHandler(record: record)  // touched only on the channel's loop once added
        let channel: any Channel
        do {
            let bootstrap = ClientBootstrap(group: group)
                .connectTimeout(timeout)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try transport(channel)
                        let pipeline = channel.pipeline.syncOperations
                        try framing.addHandlers(to: pipeline, maximumMessageBytes: maximumMessageBytes)
                        try pipeline.addHandler(replies)
                    }
                }
            channel = try await bootstrap.connect(addressOrName: host, port: port).get()
        } catch {
            throw SecureChannelError(
                .connectionFailed,
                "cannot connect to \(SocketEndpoint.format(host: host, port: port)): \(TLSClientSetup.connectText(error))"
            )
        }
        return FramedExchange(
            channel: channel, replies: replies, record: record, framing: framing,
            maximumMessageBytes: maximumMessageBytes, timeout: timeout)
    }

    /// Sends one message and waits for its reply (at most the configured timeout).
    package func send(_ message: ByteBuffer) async throws -> ByteBuffer {
        if framing == .lines && LineFrameDecoder.newlineOffset(in: message) != nil {
            throw SecureChannelError(
                .messageTooLong, "a message cannot contain a newline with line framing; use length framing")
        }
        guard message.readableBytes <= maximumMessageBytes else {
            throw SecureChannelError(
                .messageTooLong, "the message is \(message.readableBytes) bytes; the limit is \(maximumMessageBytes)")
        }
        let promise = channel.eventLoop.makePromise(of: ByteBuffer.self)
        let framed = framing.frame(message, allocator: channel.allocator)
        let channel = self.channel
        let replies = self.replies
        let record = self.record
        channel.eventLoop.execute {
            replies.enqueue(promise)
            channel.writeAndFlush(framed, promise: nil)
        }
        let timeout = self.timeout
        let timer = channel.eventLoop.scheduleTask(in: timeout) {
            record.noteClose("no reply within \(Double(timeout.nanoseconds) / 1e9) s")
            replies.failAll(
                SecureChannelError(
                    .timeout, "no reply within \(Double(timeout.nanoseconds) / 1e9) s; is the server overloaded?"))
            channel.close(promise: nil)
        }
        defer { timer.cancel() }
        return try await promise.futureResult.get()
    }

    /// Sends a UTF-8 string and returns the reply as a string.
    package func send(_ text: String) async throws -> String {
        String(buffer: try await send(ByteBuffer(string: text)))
    }

    /// Returns once the connection is closed, by either side.
    package func waitUntilClosed() async {
        try? await channel.closeFuture.get()
    }

    /// Closes the connection (with TLS close_notify).
    package func close() async {
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
        let reason = ErrorDescription.describe(error, record: record, handshakeCompleted: true, peer: "the server")
        let code: SecureChannelError.Code =
            ErrorDescription.isCertificateAlert(error) ? .clientCertificateRejected : .connectionClosed
        failAll(SecureChannelError(code, reason))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(SecureChannelError(.connectionClosed, "the server closed the connection before replying"))
        context.fireChannelInactive()
    }
}

/// Why a server may have refused our certificate, from what the client itself can check.
enum OwnCertificateCheck {
    static func diagnose(_ material: TLSMaterial, now: Date = Date()) -> String {
        let leaf = material.identity.leaf
        let source = material.identity.source
        if leaf.notValidAfter < now {
            return
                "our certificate \(source) expired on \(CertificateDescription.format(leaf.notValidAfter)): renew it"
        }
        if leaf.notValidBefore > now {
            return
                "our certificate \(source) is not valid before \(CertificateDescription.format(leaf.notValidBefore)) (is a clock wrong?)"
        }
        if let problem = CertificatePurpose.client.problem(with: leaf) {
            return "our certificate \(source): \(problem)"
        }
        if let problem = material.revocation?.problem(with: leaf, now: now) {
            return "our certificate \(source): \(problem)"
        }
        let issuers = Set(material.trust.certificates.map(\.subject)).union(
            material.identity.chain.dropFirst().map(\.subject))
        if !issuers.contains(leaf.issuer) {
            let trusted = material.trust.certificates.map { $0.subject.description }.joined(separator: ", ")
            return
                "our certificate \(source) was issued by \(leaf.issuer), not by the CA we trust (\(trusted)): a server that trusts only that CA refuses it"
        }
        return "nothing is wrong with it that we can see here: the server's log names the reason"
    }
}
