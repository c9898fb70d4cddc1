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
            service: .onEventLoop { channel, record in self.start(channel, record: record) })
    }

    /// Serves one accepted connection on its event loop, without a task: the handshake, then the connection to the
    /// target, then the glue. What arrives after the handshake waits (bounded) in the PendingInboundHandler.
    private func start(_ client: any Channel, record: ConnectionRecord) {
        do {
            try client.syncOptions?.setOption(.autoRead, value: true)  // reads drive the handshake
        } catch {
            fail(client, record: record, error)
            return
        }
        guard let handshake = record.handshake else { return }
        handshake.whenComplete { result in
            switch result {
            case .failure(let error):
                self.fail(client, record: record, error)
            case .success where record.identity != nil:
                self.connectTarget(for: client, record: record)
            case .success:
                // A resumed session skipped the verification callback: its certificate is verified now, once (in a
                // task: the verifier may hop), then the connection goes on, on its loop.
                let listener = self.listener
                Task {
                    do {
                        try await listener.verifyResumedSession(channel: client, record: record)
                    } catch {
                        self.fail(client, record: record, error)
                        return
                    }
                    client.eventLoop.execute { self.connectTarget(for: client, record: record) }
                }
            }
        }
    }

    private func connectTarget(for client: any Channel, record: ConnectionRecord) {
        guard let identity = record.identity else {
            client.close(promise: nil)
            return
        }
        configuration.target.connect(
            on: client.eventLoop, timeout: configuration.connectTimeout, halfClosure: true
        ).whenComplete { result in
            switch result {
            case .failure(let error):
                self.fail(client, record: record, error)
            case .success(let target):
                do {
                    try self.join(client, to: target, identity: identity, record: record)
                } catch {
                    target.close(promise: nil)
                    self.fail(client, record: record, error)
                }
            }
        }
    }

    /// Glues the verified client to its target connection; on the connection's event loop.
    private func join(
        _ client: any Channel, to target: any Channel, identity: PeerIdentity, record: ConnectionRecord
    ) throws {
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
        var handlers: [any ChannelHandler] = []
        if let header = configuration.httpIdentityHeader {
            let value = HTTPIdentityHandler.forwardedClientCert(identity: identity, certificate: record.certificate)
            handlers = [
                ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .fireError)),
                HTTPIdentityHandler(name: header, value: value, record: record),
            ]
        }
        try Glue.start(
            client: client, target: target, preamble: preamble, counter: TransferCounter(), record: record,
            clientHandlers: handlers)
    }

    /// Notes why the connection ends (the first reason recorded wins) and closes it.
    private func fail(_ client: any Channel, record: ConnectionRecord, _ error: any Error) {
        if let error = error as? SecureChannelError {
            record.noteClose(error.message)
        } else {
            record.noteClose(
                ErrorDescription.describe(error, record: record, handshakeCompleted: record.identity != nil))
        }
        client.close(promise: nil)
    }
}
