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
            service: .onEventLoop { channel, record in self.start(channel, record: record) })
    }

    /// Serves one local connection on its event loop, without a task: the TLS connection to the tunnel server, its
    /// verification, then the glue. What the local client sends meanwhile waits (bounded) in the
    /// PendingInboundHandler.
    private func start(_ local: any Channel, record: ConnectionRecord) {
        let target = configuration.target
        guard let setup = listener.store.active.clientSetup else {
            local.close(promise: nil)
            return
        }
        ClientBootstrap(group: local.eventLoop)
            .connectTimeout(configuration.connectTimeout)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AbortHandler())
                    try setup.addHandlers(to: channel, record: record)
                    try channel.pipeline.syncOperations.addHandler(PendingInboundHandler())
                }
            }
            .connect(addressOrName: configuration.targetHost, port: configuration.targetPort)
            .flatMapErrorThrowing { error in
                throw SecureChannelError(.connectionFailed, "cannot reach \(target): \(SocketErrorText.connect(error))")
            }
            .flatMap { remote in
                TLSClientSetup.verifiedServer(remote, record: record).map { (remote, $0) }
            }
            .whenComplete { result in
                switch result {
                case .success(let (remote, server)):
                    self.listener.logConnected(record, identity: server)
                    // A tunnel in use is busy: at shutdown it gets the drain time to finish.
                    self.listener.setBusy(record, true)
                    do {
                        try Glue.start(
                            client: local, target: remote, preamble: nil, counter: TransferCounter(), record: record)
                    } catch {
                        remote.close(promise: nil)
                        self.fail(local, record: record, error)
                    }
                case .failure(let error):
                    self.fail(local, record: record, error)
                }
            }
    }

    /// Notes why the connection ends (the first reason recorded wins) and closes it.
    private func fail(_ local: any Channel, record: ConnectionRecord, _ error: any Error) {
        if let error = error as? SecureChannelError {
            record.noteClose(error.message)
        } else {
            record.noteClose("cannot reach \(configuration.target): \(SocketErrorText.connect(error))")
        }
        local.close(promise: nil)
    }
}
