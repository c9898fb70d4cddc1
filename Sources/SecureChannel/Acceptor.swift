import CoreMetrics
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import SecureChannelPKI
import ServiceLifecycle
import X509

/// The one accepting core of every listening side (`serve`, `tunnel server`, `tunnel client`): binding (TCP or a
/// UNIX socket, SO_REUSEPORT, PROXY v2 receiving), admission and the connection cap, handshake and idle timeouts,
/// the close discipline of fatal TLS errors, reloads from the ``MaterialStore``, the sweep that closes peers whose
/// certificate expired or became revoked, graceful drain, and one log line and the metrics per connection.
///
/// With a ``MaterialStore/Role/server(rules:)`` store it terminates TLS and verifies clients; with a
/// ``MaterialStore/Role/client(serverName:timeout:serverSPIFFEID:)`` store it accepts plaintext and its body originates TLS with
/// ``MaterialStore/active``'s client setup. What happens on a connection is the caller's:
/// `run(configure:serve:)` adds its handlers to each pipeline and serves each channel (autoRead off until the
/// caller turns it on). Signals are the application's: it calls ``reload(reason:)``.
package final class Acceptor: Sendable {
    package let settings: AcceptorSettings
    package let logger: Logger
    /// The material new connections use.
    package let store: MaterialStore
    private let group: any EventLoopGroup
    private let bound: EventLoopPromise<SocketAddress>
    private let state = NIOLockedValueBox(State())
    /// Counters, gauges and histograms (``ListenerMetrics``).
    package let metrics: ListenerMetrics
    /// Whether TLS is terminated here (server role) or originated by the body (client role).
    let terminatesTLS: Bool
    /// `client` or `server`: whose certificate the peer presents, for messages.
    let peerWord: String

    private struct State {
        /// Accepted connections being served.
        var connections: [ObjectIdentifier: (channel: any Channel, record: ConnectionRecord)] = [:]
        /// Records of channels initialised but not yet served (TLS may already fail in between).
        var initialized: [ObjectIdentifier: ConnectionRecord] = [:]
        var draining = false
        var bound = false
        /// Warnings about our files already logged.
        var warned: Set<String> = []
    }

    package init(settings: AcceptorSettings, store: MaterialStore, logger: Logger, group: any EventLoopGroup) throws {
        try settings.validate()
        if case .server(let rules, _) = store.role {
            guard !rules.isEmpty else {
                throw SecureChannelError(
                    .configuration,
                    "no client is allowed: give at least one allow rule (common name, DNS or URI name), or allow any client of the CA"
                )
            }
            try rules.validate()
        }
        self.settings = settings
        self.store = store
        self.logger = logger
        self.group = group
        if case .server = store.role { terminatesTLS = true } else { terminatesTLS = false }
        peerWord = terminatesTLS ? "client" : "server"
        bound = group.any().makePromise(of: SocketAddress.self)
        metrics = ListenerMetrics(
            listener: settings.metricsLabel, factory: settings.metricsFactory,
            role: terminatesTLS ? "server" : "client")
        metrics.noteExpiry(store.material)
    }

    deinit {
        // An acceptor made but never run leaves no one waiting (a completed promise ignores this).
        bound.fail(SecureChannelError(.configuration, "the listener was never started"))
    }

    /// Bound and not shutting down: what `/healthz` reports.
    package var isReady: Bool {
        state.withLockedValue { $0.bound && !$0.draining }
    }

    /// The address, once bound (port 0 resolved to the real port).
    package func listeningAddress() async throws -> SocketAddress {
        try await bound.futureResult.get()
    }

    /// Reads the configured files again and, if everything loads, uses them for new connections and closes open
    /// connections whose client is now revoked. On any failure the current material stays and the reason is
    /// logged. Returns whether the new material is in use.
    @discardableResult
    package func reload(reason: String = "reload requested") -> Bool {
        guard store.files != nil else { return false }
        do {
            let material = try store.reload()
            metrics.reloads.increment()
            metrics.noteExpiry(material)
            logger.info(
                "reloaded certificate, key, CA and CRLs (\(reason)); new connections use them",
                metadata: ["event": "reloaded"])
            warnAboutExpiry(material)
            sweep()
            return true
        } catch {
            metrics.reloadFailures.increment()
            logger.error(
                "reload failed (\(reason)), keeping the current material: \(error)",
                metadata: ["event": "reload-failed"])
            return false
        }
    }

    /// Closes connections whose peer's certificate expired or is now revoked; each gets a log line.
    func sweep(now: Date = Date()) {
        let revocation = store.material.revocation
        let open = state.withLockedValue { $0.connections.values.map { ($0.channel, $0.record) } }
        for (channel, record) in open {
            guard let certificate = record.certificate else { continue }
            if now > certificate.notValidAfter {
                record.noteClose(expired(certificate))
                channel.close(promise: nil)
            } else if let problem = revocation?.problem(
                withChain: record.chain.isEmpty ? [certificate] : record.chain, now: now)
            {
                record.noteClose("closed: \(peerWord) certificate \(problem)")
                channel.close(promise: nil)
            }
        }
    }

    private func warnAboutExpiry(_ material: TLSMaterial, now: Date = Date()) {
        // Each said once: a reload of the same file does not repeat it.
        // A key others can read is a warning; an intermediate's CRL (what `--crl-url` fetches from an online CA run
        // from an intermediate, as recommended) is how it should be, so it is said as information.
        let said: [(text: String, event: Logger.MetadataValue, level: Logger.Level)] =
            material.identity.warnings.map { ($0, "key-permissions", .warning) }
            + (material.revocation?.notes ?? []).map { ($0, "crl-issuer", .info) }
        let fresh = state.withLockedValue { state in said.filter { state.warned.insert($0.text).inserted } }
        for (text, event, level) in fresh {
            logger.log(level: level, "\(text)", metadata: ["event": event])
        }
        let mine =
            [("the \(terminatesTLS ? "server" : "client") certificate", material.identity.leaf)]
            + material.trust.certificates.map { ("CA \($0.subject)", $0) }
        for (what, certificate) in mine {
            if let text = Self.expiryWarning(what, certificate, horizonDays: settings.expiryWarningDays, now: now) {
                logger.warning("\(text)", metadata: ["event": "expiry"])
            }
        }
    }

    /// Whether a file of the store changed since the last look (``FileWatchService`` asks).
    package var watchedFilesChanged: Bool { store.filesChanged() }

    /// Sweeps open connections, updates the expiry gauges and gives memory back, until cancelled. File changes are
    /// watched beside the listeners (``FileWatchService``).
    private func maintain() async {
        var peak = 0
        var ticks = 0
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: .milliseconds(500))
            } catch {
                return
            }
            sweep()
            metrics.noteExpiry(store.material)
            // Every 5 s: if connections ended since the last look, give the freed memory back.
            let open = state.withLockedValue { $0.connections.count }
            peak = max(peak, open)
            ticks += 1
            if ticks % 10 == 0 {
                if open < peak { MemoryRelease.returnFreedMemory() }
                peak = open
            }
        }
    }

    /// Binds, accepts and serves until graceful shutdown or cancellation. `configure` adds the caller's handlers
    /// after the TLS ones (on the child's event loop); `serve` handles one accepted channel, whose autoRead is off.
    package func run(
        configure: @escaping @Sendable (ChannelPipeline.SynchronousOperations, ConnectionRecord) throws -> Void,
        serve: @escaping @Sendable (any Channel, ConnectionRecord) async -> Void
    ) async throws {
        try await run(configure: configure, service: .task(serve))
    }

    /// Binds, accepts and serves until graceful shutdown or cancellation; see ``Service``. Returns once every
    /// connection has closed.
    package func run(
        configure: @escaping @Sendable (ChannelPipeline.SynchronousOperations, ConnectionRecord) throws -> Void,
        service: Service
    ) async throws {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.autoRead, value: false)
            .childChannelOption(.allowRemoteHalfClosure, value: settings.allowHalfClosure)
        switch service {
        case .task(let serve):
            try await runWithTasks(bootstrap, configure: configure, serve: serve)
        case .onEventLoop(let start):
            try await runOnEventLoops(bootstrap, configure: configure, start: start)
        }
    }

    /// Accepted connections come through an async sequence; each gets a task on its own event loop.
    private func runWithTasks(
        _ bootstrap: ServerBootstrap,
        configure: @escaping @Sendable (ChannelPipeline.SynchronousOperations, ConnectionRecord) throws -> Void,
        serve: @escaping @Sendable (any Channel, ConnectionRecord) async -> Void
    ) async throws {
        let initializer: @Sendable (any Channel) -> EventLoopFuture<any Channel> = { channel in
            channel.eventLoop.makeCompletedFuture {
                try self.initialize(channel, configure: configure)
                return channel
            }
        }
        let serverChannel: NIOAsyncChannel<any Channel, Never>
        do {
            switch settings.listen {
            case .tcp(let host, let port):
                serverChannel = try await reusingPort(bootstrap).bind(
                    host: host, port: port, childChannelInitializer: initializer)
            case .unix(let path):
                serverChannel = try await bootstrap.bind(
                    unixDomainSocketPath: path, cleanupExistingSocketFile: true, childChannelInitializer: initializer)
            }
        } catch {
            throw bindFailed(error)
        }
        try announce(serverChannel.channel)
        try await withGracefulShutdownHandler {
            try await withMaintenance {
                try await serverChannel.executeThenClose { inbound in
                    try await withThrowingDiscardingTaskGroup { tasks in
                        do {
                            for try await child in inbound {
                                guard self.admit(child) else { continue }
                                // The connection's task runs on the connection's own event loop: a message then
                                // goes from socket to handler to reply without a hop between threads.
                                tasks.addTask(executorPreference: EventLoopTaskExecutor(child.eventLoop)) {
                                    await self.serve(child, serve)
                                }
                            }
                        } catch {
                            self.closeAll()
                            throw error
                        }
                    }
                }
            }
        } onGracefulShutdown: {
            self.beginShutdown(serverChannel.channel)
        }
    }

    /// Accepted connections are admitted and started in the child initializer, on their event loops: no task and no
    /// async sequence between the accept and the handshake.
    private func runOnEventLoops(
        _ bootstrap: ServerBootstrap,
        configure: @escaping @Sendable (ChannelPipeline.SynchronousOperations, ConnectionRecord) throws -> Void,
        start: @escaping @Sendable (any Channel, ConnectionRecord) -> Void
    ) async throws {
        let bootstrap = bootstrap.childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try self.initialize(channel, configure: configure)
                // Once registered: a refusal closes the channel, which it cannot be before.
                channel.eventLoop.execute {
                    if self.admit(channel) { self.serve(channel, start) }
                }
            }
        }
        let serverChannel: any Channel
        do {
            switch settings.listen {
            case .tcp(let host, let port):
                serverChannel = try await reusingPort(bootstrap).bind(host: host, port: port).get()
            case .unix(let path):
                serverChannel = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true)
                    .get()
            }
        } catch {
            throw bindFailed(error)
        }
        try announce(serverChannel)
        try await withGracefulShutdownHandler {
            try await withMaintenance {
                do {
                    try await withTaskCancellationHandler {
                        try await serverChannel.closeFuture.get()
                    } onCancel: {
                        serverChannel.close(promise: nil)
                    }
                    try Task.checkCancellation()
                } catch {
                    self.closeAll()
                    throw error
                }
                // No more connections come; each ends when its channel closes.
                let open = self.state.withLockedValue { $0.connections.values.map(\.channel) }
                for channel in open { try? await channel.closeFuture.get() }
            }
        } onGracefulShutdown: {
            self.beginShutdown(serverChannel)
        }
    }

    /// SO_REUSEPORT as `--reuse-port` says (TCP listeners only).
    private func reusingPort(_ bootstrap: ServerBootstrap) -> ServerBootstrap {
        bootstrap.serverChannelOption(
            .socket(SocketOptionLevel(SOL_SOCKET), SocketOptionName(SO_REUSEPORT)), value: settings.reusePort ? 1 : 0)
    }

    private func bindFailed(_ error: any Error) -> SecureChannelError {
        let failure = SecureChannelError(
            .configuration, "cannot listen on \(settings.listen): \(SocketErrorText.bind(error))")
        bound.fail(failure)
        return failure
    }

    /// Publishes the bound address (``listeningAddress()``) and warns about certificates that expire soon.
    private func announce(_ serverChannel: any Channel) throws {
        guard let address = serverChannel.localAddress else {
            serverChannel.close(promise: nil)
            throw SecureChannelError(.configuration, "the listening socket has no address")
        }
        state.withLockedValue { $0.bound = true }
        bound.succeed(address)
        warnAboutExpiry(store.material)
    }

    /// Runs `body` beside the periodic upkeep (``maintain()``), which ends with it.
    private func withMaintenance(_ body: () async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { background in
            background.addTask { await self.maintain() }
            defer { background.cancelAll() }
            try await body()
        }
    }

    /// Cancelled, not shut down gracefully: the connections end with the server.
    private func closeAll() {
        let open = state.withLockedValue { $0.connections.values.map(\.channel) }
        for channel in open { channel.close(promise: nil) }
    }

    /// Builds a child pipeline; runs on the child's event loop.
    private func initialize(
        _ channel: any Channel, configure: (ChannelPipeline.SynchronousOperations, ConnectionRecord) throws -> Void
    ) throws {
        let record = ConnectionRecord(remote: channel.remoteAddress)
        metrics.accepted.increment()
        try addHandlers(to: channel, record: record, configure: configure)
        // Only a channel whose pipeline is complete is waited for: NIO closes one whose initializer threw.
        state.withLockedValue { $0.initialized[ObjectIdentifier(channel)] = record }
    }

    private func addHandlers(
        to channel: any Channel, record: ConnectionRecord,
        configure: (ChannelPipeline.SynchronousOperations, ConnectionRecord) throws -> Void
    ) throws {
        let pipeline = channel.pipeline.syncOperations
        try pipeline.addHandler(WireByteCounter(record: record, metrics: metrics))
        guard terminatesTLS else {
            // Plaintext in, TLS out (a tunnel client): the body originates TLS; idle time counts from the accept.
            if settings.acceptProxyProtocol { try pipeline.addHandler(ProxyProtocolReceiver(record: record)) }
            try pipeline.addHandler(IdleTimeoutHandler(timeout: settings.idleTimeout, record: record))
            try configure(pipeline, record)
            return
        }
        let handshake = channel.eventLoop.makePromise(of: Void.self)
        record.handshake = handshake.futureResult
        if settings.allowHalfClosure {
            try pipeline.addHandler(AbortHandler())
            try pipeline.addHandler(DeferredEndOfInputHandler(handshake: handshake.futureResult))
        }
        let active = store.active
        guard let context = active.serverContext, let verifier = active.verifier else {
            throw SecureChannelError(.configuration, "the material store holds no server context")
        }
        let tlsHandler = NIOSSLServerHandler(
            context: context, customVerificationCallback: verifier.callback(record: record))
        if settings.acceptProxyProtocol {
            try pipeline.addHandler(ProxyProtocolReceiver(record: record))
        }
        let quickAck = QuickAckHandler(handshake: handshake.futureResult)
        let observer = HandshakeObserver(side: .server, record: record)
        try pipeline.addHandler(quickAck)
        try pipeline.addHandler(observer)
        // Both only matter during the handshake: once it is done they leave the pipeline, so that every message
        // after it passes two handlers fewer. On the next tick, outside any handler's own call.
        let handlers = NIOLoopBound((quickAck, observer), eventLoop: channel.eventLoop)
        handshake.futureResult.whenSuccess {
            channel.eventLoop.execute {
                let pipeline = channel.pipeline.syncOperations
                pipeline.removeHandler(handlers.value.0, promise: nil)
                pipeline.removeHandler(handlers.value.1, promise: nil)
            }
        }
        try pipeline.addHandler(FatalCloseHandler(record: record))
        try pipeline.addHandler(tlsHandler)

        try pipeline.addHandler(
            HandshakeEventsHandler(record: record, handshake: handshake, idleTimeout: settings.idleTimeout))
        try pipeline.addHandler(HandshakeTimeoutHandler(timeout: settings.handshakeTimeout, record: record))
        try configure(pipeline, record)
    }

    /// Refuses a connection at once when the server is full or shutting down.
    private func admit(_ channel: any Channel) -> Bool {
        let key = ObjectIdentifier(channel)
        let (admitted, count, draining) = state.withLockedValue { state -> (Bool, Int, Bool) in
            guard !state.draining, state.connections.count < settings.maximumConnections else {
                state.initialized.removeValue(forKey: key)
                return (false, state.connections.count, state.draining)
            }
            let record = state.initialized.removeValue(forKey: key) ?? ConnectionRecord(remote: channel.remoteAddress)
            state.connections[key] = (channel, record)
            return (true, state.connections.count, false)
        }
        if !admitted {
            metrics.refused[.limit]?.increment()
            let peer = ConnectionRecord(remote: channel.remoteAddress).remote
            let why = draining ? "server shutting down" : "over the connection limit (\(count) open)"
            logger.warning(
                "connection from \(peer) refused: \(why)",
                metadata: [
                    "peer": "\(peer)", "event": "refused", "refusal": "\(RefusalReason.limit.rawValue)",
                    "reason": "\(why)",
                ])
            channel.close(promise: nil)
        }
        return admitted
    }

    /// Registers, logs and unregisters one connection around the caller's `serve`.
    private func serve(_ channel: any Channel, _ serve: @Sendable (any Channel, ConnectionRecord) async -> Void) async {
        let key = ObjectIdentifier(channel)
        metrics.open.increment()
        defer {
            _ = state.withLockedValue { $0.connections.removeValue(forKey: key) }
            metrics.open.decrement()
        }
        guard let record = state.withLockedValue({ $0.connections[key]?.record }) else { return }
        record.handshake?.whenSuccess {
            if let identity = record.identity { self.logConnected(record, identity: identity) }
            self.closeAtExpiry(channel, record)
        }
        await serve(channel, record)
        logEnded(record)
    }

    /// Registers one connection and starts it without a task; it is logged and unregistered when its channel
    /// closes. Runs on the connection's event loop.
    private func serve(_ channel: any Channel, _ start: @escaping @Sendable (any Channel, ConnectionRecord) -> Void) {
        let key = ObjectIdentifier(channel)
        guard let record = state.withLockedValue({ $0.connections[key]?.record }) else { return }
        metrics.open.increment()
        record.handshake?.whenSuccess {
            if let identity = record.identity { self.logConnected(record, identity: identity) }
            self.closeAtExpiry(channel, record)
        }
        channel.closeFuture.whenComplete { _ in
            _ = self.state.withLockedValue { $0.connections.removeValue(forKey: key) }
            self.metrics.open.decrement()
            self.logEnded(record)
        }
        start(channel, record)
    }

    private func beginShutdown(_ serverChannel: any Channel) {
        let idle = state.withLockedValue { state -> [any Channel] in
            state.draining = true
            return state.connections.values.filter { $0.record.beginDraining() }.map(\.channel)
        }
        logger.info(
            "shutting down: no new connections; \(idle.count) idle connection(s) closed, in-flight replies may finish",
            metadata: ["event": "draining"])
        serverChannel.close(promise: nil)
        for channel in idle { channel.close(promise: nil) }
        let grace = settings.shutdownGracePeriod
        serverChannel.eventLoop.scheduleTask(in: grace) { [self] in
            let rest = state.withLockedValue { $0.connections.values.map(\.channel) }
            for channel in rest { channel.close(promise: nil) }
        }
    }
}
