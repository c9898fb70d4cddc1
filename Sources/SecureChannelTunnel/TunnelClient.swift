import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SecureChannel
import ServiceLifecycle

/// The TLS-originating end of a tunnel: each local plaintext connection becomes an mTLS connection to the tunnel
/// server, whose certificate and name are verified before a byte is forwarded.
public final class TunnelClient: Service, Sendable {
    /// The configuration.
    public let configuration: TunnelClientConfiguration
    private let logger: Logger
    private let group: any EventLoopGroup
    private let setup: NIOLockedValueBox<TLSClientSetup>
    private let bound: EventLoopPromise<SocketAddress>
    /// Open local connections, closed at the end of the shutdown grace period.
    private let open = NIOLockedValueBox([ObjectIdentifier: any Channel]())
    /// Local connections accepted and open, server handshakes (verified, duration, refusals), plaintext bytes
    /// forwarded, and our certificate's and the CA's expiry.
    private let metrics: ListenerMetrics
    /// Bound and not yet shutting down.
    private let ready = NIOLockedValueBox(false)

    /// Creates the client; throws a one-line error for an unusable configuration.
    public init(configuration: TunnelClientConfiguration, logger: Logger,
                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) throws {
        try configuration.validate()
        self.configuration = configuration
        self.logger = logger
        self.group = group
        metrics = ListenerMetrics(listener: configuration.metricsLabel, factory: configuration.metricsFactory, role: "client")
        setup = NIOLockedValueBox(try Self.makeSetup(configuration, metrics: metrics))
        bound = group.any().makePromise(of: SocketAddress.self)
    }

    private static func makeSetup(_ configuration: TunnelClientConfiguration, metrics: ListenerMetrics) throws -> TLSClientSetup {
        let material = try configuration.files.load()
        metrics.noteExpiry(material)
        return try TLSClientSetup(material: material, serverName: configuration.serverName ?? configuration.targetHost,
                                  tls: configuration.tls, timeout: configuration.connectTimeout)
    }

    /// The plaintext address, once bound (a UNIX socket path reports no port).
    public func listeningAddress() async throws -> SocketAddress {
        try await bound.futureResult.get()
    }

    /// Listening and not shutting down (for health checks).
    public var isReady: Bool { ready.withLockedValue { $0 } }

    /// Re-reads the certificate, key, CA and CRL files; on failure keeps the current ones.
    @discardableResult
    public func reload() -> Bool {
        do {
            let fresh = try Self.makeSetup(configuration, metrics: metrics)
            setup.withLockedValue { $0 = fresh }
            metrics.reloads.increment()
            logger.info("reloaded certificate, key, CA and CRLs", metadata: ["event": "reloaded"])
            return true
        } catch {
            metrics.reloadFailures.increment()
            logger.error("reload failed, keeping the current material: \(error)", metadata: ["event": "reload-failed"])
            return false
        }
    }

    /// Accepts and forwards until graceful shutdown.
    public func run() async throws {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.autoRead, value: false)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
        let serverChannel: NIOAsyncChannel<any Channel, Never>
        do {
            let initializer: @Sendable (any Channel) -> EventLoopFuture<any Channel> = { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(PendingInboundHandler())
                    return channel
                }
            }
            switch configuration.listen {
            case .tcp(let host, let port):
                serverChannel = try await bootstrap.bind(host: host, port: port, childChannelInitializer: initializer)
            case .unix(let path):
                serverChannel = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true,
                                                         childChannelInitializer: initializer)
            }
        } catch {
            let failure = SecureChannelError(.configuration, "cannot listen on \(configuration.listen): \(error)")
            bound.fail(failure)
            throw failure
        }
        if let address = serverChannel.channel.localAddress {
            ready.withLockedValue { $0 = true }
            bound.succeed(address)
        }
        try await withGracefulShutdownHandler {
            try await serverChannel.executeThenClose { inbound in
                try await withThrowingDiscardingTaskGroup { tasks in
                    for try await child in inbound {
                        metrics.accepted.increment()
                        open.withLockedValue { $0[ObjectIdentifier(child)] = child }
                        tasks.addTask(executorPreference: EventLoopTaskExecutor(child.eventLoop)) {
                            await self.forward(child)
                            _ = self.open.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(child)) }
                        }
                    }
                }
            }
        } onGracefulShutdown: {
            self.ready.withLockedValue { $0 = false }
            serverChannel.channel.close(promise: nil)
            let open = self.open
            serverChannel.channel.eventLoop.scheduleTask(in: self.configuration.shutdownGracePeriod) {
                for channel in open.withLockedValue({ Array($0.values) }) { channel.close(promise: nil) }
            }
        }
    }

    private func forward(_ local: any Channel) async {
        let started = Date()
        let record = ConnectionRecord(remote: local.remoteAddress)
        let peer = record.remote == "unknown" ? "a local client" : record.remote
        let target = "\(configuration.targetHost):\(configuration.targetPort)"
        let counter = TransferCounter()
        metrics.open.increment()
        defer { metrics.open.decrement() }
        do {
            let setup = self.setup.withLockedValue { $0 }
            let remote = try await ClientBootstrap(group: local.eventLoop)
                .connectTimeout(configuration.connectTimeout)
                .channelOption(.allowRemoteHalfClosure, value: true)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(AbortHandler())
                        try setup.addHandlers(to: channel, record: record)
                        try channel.pipeline.syncOperations.addHandler(PendingInboundHandler())
                    }
                }
                .connect(host: configuration.targetHost, port: configuration.targetPort).get()
            let server = try await TLSClientSetup.awaitVerifiedServer(remote, record: record)
            metrics.verified.increment()
            metrics.handshakeDuration.recordNanoseconds((NIODeadline.now() - record.acceptedAt).nanoseconds)
            logger.info("connection from \(peer) to \(target): verified \(server), \(record.session.summary)", metadata: [
                "event": "connected", "peer": "\(peer)", "target": "\(target)", "subject": "\(server.subject)",
                "tls_version": "\(record.session.tlsVersion)", "cipher": "\(record.session.cipherSuite)",
            ])
            try await Glue.join(client: local, target: remote, preamble: nil, counter: counter, record: record)
        } catch let error as SecureChannelError {
            record.noteClose(error.message)
            local.close(promise: nil)
        } catch {
            record.noteClose("cannot reach \(target): \(TunnelText.connect(error))")
            local.close(promise: nil)
        }
        if record.identity == nil, let refusal = record.refusal { metrics.refused[refusal]?.increment() }
        metrics.bytesReceived.increment(by: counter.toTarget)
        metrics.bytesSent.increment(by: counter.toClient)
        let elapsed = Date().timeIntervalSince(started)
        let seconds = String(format: "%.3f", elapsed)
        let text = "connection from \(peer) to \(target) ended: \(record.closeReason ?? "closed"); \(record.traffic ?? "nothing forwarded"), \(seconds) s"
        let metadata: Logger.Metadata = [
            "event": "ended", "peer": "\(peer)", "target": "\(target)", "reason": "\(record.closeReason ?? "closed")",
            "duration": .stringConvertible((elapsed * 1000).rounded() / 1000),
        ]
        if record.identity == nil { logger.warning("\(text)", metadata: metadata) } else { logger.info("\(text)", metadata: metadata) }
    }
}
