import Foundation
import Logging
import NIOCore
import NIOPosix
import SecureChannel
import ServiceLifecycle

/// The TLS-originating end of a tunnel: each local plaintext connection becomes an mTLS connection to the tunnel
/// server, whose certificate and name are verified before a byte is forwarded. Accepting, limits, idle time,
/// drain, reloads and logs are the shared ``Acceptor``'s; the body connects and glues.
public final class TunnelClient: Service, MaterialReloading, Sendable {
    /// The configuration.
    public let configuration: TunnelClientConfiguration
    private let listener: Acceptor

    /// Creates the client; throws a one-line error for an unusable configuration.
    public init(
        configuration: TunnelClientConfiguration, logger: Logger,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) throws {
        try configuration.validate()
        self.configuration = configuration
        let store = try MaterialStore(
            files: configuration.files,
            role: .client(
                serverName: configuration.serverName ?? configuration.targetHost, timeout: configuration.connectTimeout,
                serverSPIFFEID: configuration.serverSPIFFEID),
            tls: configuration.tls)
        listener = try Acceptor(settings: configuration.acceptorSettings, store: store, logger: logger, group: group)
    }

    /// The plaintext address, once bound (a UNIX socket path reports no port).
    public func listeningAddress() async throws -> SocketAddress {
        try await listener.listeningAddress()
    }

    /// Listening and not shutting down (for health checks).
    public var isReady: Bool { listener.isReady }

    /// Re-reads the certificate, key, CA and CRL files; on failure keeps the current ones. Open tunnels go on;
    /// new ones use the new material.
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

    private func forward(_ local: any Channel, record: ConnectionRecord) async {
        let target = configuration.target
        do {
            guard let setup = listener.store.active.clientSetup else { return }
            let remote: any Channel
            do {
                remote = try await ClientBootstrap(group: local.eventLoop)
                    .connectTimeout(configuration.connectTimeout)
                    .channelOption(.allowRemoteHalfClosure, value: true)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(AbortHandler())
                            try setup.addHandlers(to: channel, record: record)
                            try channel.pipeline.syncOperations.addHandler(PendingInboundHandler())
                        }
                    }
                    .connect(addressOrName: configuration.targetHost, port: configuration.targetPort).get()
            } catch {
                throw SecureChannelError(.connectionFailed, "cannot reach \(target): \(SocketErrorText.connect(error))")
            }
            let server = try await TLSClientSetup.awaitVerifiedServer(remote, record: record)
            listener.logConnected(record, identity: server)
            // A tunnel in use is busy: at shutdown it gets the drain time to finish.
            listener.setBusy(record, true)
            try await Glue.join(
                client: local, target: remote, preamble: nil, counter: TransferCounter(), record: record)
        } catch let error as SecureChannelError {
            record.noteClose(error.message)
            local.close(promise: nil)
        } catch {
            record.noteClose("cannot reach \(target): \(SocketErrorText.connect(error))")
            local.close(promise: nil)
        }
    }
}
