import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import SecureChannel
import SecureChannelPKI
import ServiceLifecycle

/// The TLS-terminating end of a tunnel: every verified client connection becomes a plaintext connection to the
/// target, bytes forwarded exactly both ways. Identities, rules, CRLs, reloads, limits and logs are the message
/// server's (``Acceptor``); only what happens after the handshake differs.
public final class TunnelServer: Service, MaterialReloading, Sendable {
    /// The configuration.
    public let configuration: TunnelServerConfiguration
    private let listener: Acceptor

    /// Creates the server; throws a one-line error for an unusable configuration.
    public init(
        configuration: TunnelServerConfiguration, logger: Logger,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) throws {
        try configuration.validate()
        self.configuration = configuration
        let store = try MaterialStore(
            files: configuration.files, role: .server(rules: configuration.rules), tls: configuration.tls)
        listener = try Acceptor(settings: configuration.acceptorSettings, store: store, logger: logger, group: group)
    }

    /// The TLS address, once bound.
    public func listeningAddress() async throws -> SocketAddress {
        try await listener.listeningAddress()
    }

    /// Listening and not shutting down (for health checks).
    public var isReady: Bool { listener.isReady }

    /// Re-reads the files; see ``MessageServer/reload(reason:)``.
    /// Whether a watched file changed since the last look (``FileWatchService`` asks).
    public var watchedFilesChanged: Bool { listener.watchedFilesChanged }

    @discardableResult
    public func reload(reason: String = "reload requested") -> Bool {
        listener.reload(reason: reason)
    }

    /// Accepts and forwards until graceful shutdown.
    public func run() async throws {
        try await listener.run(
            configure: { pipeline, _ in try pipeline.addHandler(PendingInboundHandler()) },
            serve: { channel, record in await self.forward(channel, record: record) })
    }

    private func forward(_ client: any Channel, record: ConnectionRecord) async {
        do {
            // Reads drive the handshake; what arrives after it waits (bounded) in the PendingInboundHandler.
            try await client.eventLoop.submit { try client.syncOptions?.setOption(.autoRead, value: true) }.get()
            guard let handshake = record.handshake else { return }
            try await handshake.get()
            if record.identity == nil {
                try await listener.verifyResumedSession(channel: client, record: record)
            }
            guard let identity = record.identity else {
                client.close(promise: nil)
                return
            }
            let target = try await configuration.target.connect(
                on: client.eventLoop, timeout: configuration.connectTimeout,
                halfClosure: true)
            var preamble: ByteBuffer?
            if configuration.proxyProtocol, let source = client.remoteAddress, let destination = client.localAddress {
                var header = ProxyProtocolHeader(
                    source: source, destination: destination, tlsVersion: record.session.tlsVersion,
                    commonName: identity.commonName, cipher: record.session.cipherSuite,
                    clientCertificate: try record.certificate.map { try CertificateIO.der($0) })
                header.clientURI = identity.spiffeID ?? identity.uris.first
                preamble = header.encode()
            }
            // A tunnel in use is busy: at shutdown it gets the drain time to finish.
            listener.setBusy(record, true)
            var handlers: @Sendable () -> [any ChannelHandler] = { [] }
            if let header = configuration.httpIdentityHeader {
                let value = HTTPIdentityHandler.forwardedClientCert(identity: identity, certificate: record.certificate)
                handlers = {
                    [
                        ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .fireError)),
                        HTTPIdentityHandler(name: header, value: value, record: record),
                    ]
                }
            }
            try await Glue.join(
                client: client, target: target, preamble: preamble, counter: TransferCounter(), record: record,
                clientHandlers: handlers)
        } catch let error as SecureChannelError {
            record.noteClose(error.message)
            client.close(promise: nil)
        } catch {
            record.noteClose(
                ErrorDescription.describe(error, record: record, handshakeCompleted: record.identity != nil))
            client.close(promise: nil)
        }
    }
}
