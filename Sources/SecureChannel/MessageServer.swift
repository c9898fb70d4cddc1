import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import SecureChannelPKI
import ServiceLifecycle
import UnixSignals
import X509

/// Replies to one message from a verified peer. The message excludes its framing; so must the reply.
public typealias MessageHandler = @Sendable (ByteBuffer, PeerIdentity) async throws -> ByteBuffer

/// An mTLS server: requires and verifies a client certificate, applies the access rules, then passes each
/// message to the handler and sends its reply, in order. One failing client never affects another.
///
/// Run it as a ServiceLifecycle `Service`: graceful shutdown stops accepting, lets in-flight replies finish
/// (bounded by the grace period) and closes the rest.
public final class MessageServer: Service, Sendable {
    /// The configuration it was created with.
    public let configuration: MessageServerConfiguration
    private let logger: Logger
    private let handler: MessageHandler
    private let group: any EventLoopGroup
    /// The TLS context and verifier new connections use; replaced by a successful reload.
    private let current: NIOLockedValueBox<Active>
    private let bound: EventLoopPromise<SocketAddress>
    private let state = NIOLockedValueBox(State())

    /// Material in use: built once per (re)load.
    private struct Active: Sendable {
        var material: TLSMaterial
        var context: NIOSSLContext
        var verifier: PeerVerifier
    }

    private struct State {
        /// Accepted connections being served.
        var connections: [ObjectIdentifier: (channel: any Channel, record: ConnectionRecord)] = [:]
        /// Records of channels initialised but not yet served (TLS may already fail in between).
        var initialized: [ObjectIdentifier: ConnectionRecord] = [:]
        var draining = false
    }

    /// Creates a server; throws a one-line ``SecureChannelError`` for an unusable configuration.
    public init(
        configuration: MessageServerConfiguration, logger: Logger,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, handler: @escaping MessageHandler
    ) throws {
        try configuration.validate()
        self.configuration = configuration
        self.logger = logger
        self.handler = handler
        self.group = group
        let material = TLSMaterial(identity: configuration.identity, trust: configuration.trust,
                                   revocation: configuration.revocation)
        current = NIOLockedValueBox(try Self.activate(material, configuration: configuration))
        bound = group.any().makePromise(of: SocketAddress.self)
    }

    /// Builds the TLS context and verifier for `material`.
    private static func activate(_ material: TLSMaterial, configuration: MessageServerConfiguration) throws -> Active {
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: material.identity.nioChain.map { .certificate($0) },
            privateKey: .privateKey(material.identity.nioKey))
        configuration.tls.apply(to: &tls)
        tls.certificateVerification = .noHostnameVerification  // client certificate required; checked by PeerVerifier
        tls.trustRoots = .certificates(material.trust.nioCertificates)  // never the system roots
        tls.sendCANameList = true
        let context: NIOSSLContext
        do {
            context = try NIOSSLContext(configuration: tls)
        } catch {
            throw SecureChannelError(.configuration, "the TLS stack refused the server configuration: \(error)")
        }
        let verifier = PeerVerifier(trust: material.trust, purpose: .client, serverName: nil, rules: configuration.rules,
                                    revocation: material.revocation)
        return Active(material: material, context: context, verifier: verifier)
    }

    /// Reads the configured files again and, if everything loads, uses them for new connections and closes open
    /// connections whose client is now revoked. On any failure the current material stays and the reason is
    /// logged. Returns whether the new material is in use.
    @discardableResult
    public func reload(reason: String = "reload requested") -> Bool {
        guard let files = configuration.reloadFiles else { return false }
        do {
            let active = try Self.activate(try files.load(), configuration: configuration)
            current.withLockedValue { $0 = active }
            logger.info("reloaded certificate, key, CA and CRLs (\(reason)); new connections use them",
                        metadata: ["event": "reloaded"])
            warnAboutExpiry(active.material)
            sweep()
            return true
        } catch {
            logger.error("reload failed (\(reason)), keeping the current material: \(error)", metadata: ["event": "reload-failed"])
            return false
        }
    }

    /// Closes connections whose client certificate expired or is now revoked; each gets a log line.
    func sweep(now: Date = Date()) {
        let revocation = current.withLockedValue { $0.material.revocation }
        let open = state.withLockedValue { $0.connections.values.map { ($0.channel, $0.record) } }
        for (channel, record) in open {
            guard let certificate = record.certificate else { continue }
            if now > certificate.notValidAfter {
                record.noteClose("client certificate expired at \(CertificateDescription.format(certificate.notValidAfter))")
                channel.close(promise: nil)
            } else if let problem = revocation?.problem(with: certificate, now: now) {
                record.noteClose("closed: client certificate \(problem)")
                channel.close(promise: nil)
            }
        }
    }

    private func warnAboutExpiry(_ material: TLSMaterial, now: Date = Date()) {
        let horizon = now + TimeInterval(configuration.expiryWarningDays) * 86_400
        let mine = [("the server certificate", material.identity.leaf)] + material.trust.certificates.map { ("CA \($0.subject)", $0) }
        for (what, certificate) in mine where certificate.notValidAfter < horizon {
            let date = CertificateDescription.format(certificate.notValidAfter)
            if certificate.notValidAfter < now {
                logger.warning("\(what) EXPIRED on \(date): renew it ('securechannel ca renew')", metadata: ["event": "expiry"])
            } else {
                let days = Int(certificate.notValidAfter.timeIntervalSince(now) / 86_400)
                logger.warning("\(what) expires on \(date) (in \(days) days): renew it soon", metadata: ["event": "expiry"])
            }
        }
    }

    /// Watches the files (and SIGHUP) and sweeps open connections, until cancelled.
    private func maintain() async {
        let watcher = configuration.reloadFiles.map { FileWatcher(paths: $0.paths) }
        var seen = watcher?.stamps()
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: .milliseconds(500))
            } catch {
                return
            }
            if let watcher {
                let now = watcher.stamps()
                if now != seen {
                    seen = now
                    reload(reason: "files changed")
                }
            }
            sweep()
        }
    }

    private func reloadOnHangup() async {
        guard configuration.reloadFiles != nil else { return }
        for await _ in await UnixSignalsSequence(trapping: .sighup) {
            reload(reason: "SIGHUP")
        }
    }

    /// The address the server listens on, once bound (port 0 resolved to the real port).
    public func listeningAddress() async throws -> SocketAddress {
        try await bound.futureResult.get()
    }

    /// Binds, accepts and serves until graceful shutdown or cancellation.
    public func run() async throws {
        let configuration = self.configuration
        let serverChannel: NIOAsyncChannel<any Channel, Never>
        do {
            serverChannel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.autoRead, value: false)
                .bind(host: configuration.host, port: configuration.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try self.initialize(channel)
                        return channel
                    }
                }
        } catch {
            let failure = SecureChannelError(.configuration, "cannot listen on \(configuration.host):\(configuration.port): \(error)")
            bound.fail(failure)
            throw failure
        }
        guard let address = serverChannel.channel.localAddress else {
            serverChannel.channel.close(promise: nil)
            throw SecureChannelError(.configuration, "the listening socket has no address")
        }
        bound.succeed(address)
        warnAboutExpiry(current.withLockedValue { $0.material })
        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { background in
                background.addTask { await self.maintain() }
                background.addTask { await self.reloadOnHangup() }
                defer { background.cancelAll() }
                try await serverChannel.executeThenClose { inbound in
                    try await withThrowingDiscardingTaskGroup { tasks in
                        for try await child in inbound {
                            guard self.admit(child) else { continue }
                            tasks.addTask { await self.serve(child) }
                        }
                    }
                }
            }
        } onGracefulShutdown: {
            self.beginShutdown(serverChannel.channel)
        }
    }

    /// Builds a child pipeline; runs on the child's event loop.
    private func initialize(_ channel: any Channel) throws {
        let record = ConnectionRecord(remote: channel.remoteAddress)
        state.withLockedValue { $0.initialized[ObjectIdentifier(channel)] = record }
        let pipeline = channel.pipeline.syncOperations
        let active = current.withLockedValue { $0 }
        let tlsHandler = NIOSSLServerHandler(context: active.context, customVerificationCallback: active.verifier.callback(record: record))
        try pipeline.addHandler(HandshakeObserver(side: .server, record: record))
        try pipeline.addHandler(tlsHandler)
        try pipeline.addHandler(HandshakeEventsHandler(record: record, handshake: channel.eventLoop.makePromise(),
                                                       idleTimeout: configuration.idleTimeout))
        try pipeline.addHandler(HandshakeTimeoutHandler(timeout: configuration.handshakeTimeout, record: record))
        try configuration.framing.addHandlers(to: pipeline, maximumMessageBytes: configuration.maximumMessageBytes)
    }

    /// Refuses a connection at once when the server is full or shutting down.
    private func admit(_ channel: any Channel) -> Bool {
        let key = ObjectIdentifier(channel)
        let (admitted, count, draining) = state.withLockedValue { state -> (Bool, Int, Bool) in
            guard !state.draining, state.connections.count < configuration.maximumConnections else {
                state.initialized.removeValue(forKey: key)
                return (false, state.connections.count, state.draining)
            }
            let record = state.initialized.removeValue(forKey: key) ?? ConnectionRecord(remote: channel.remoteAddress)
            state.connections[key] = (channel, record)
            return (true, state.connections.count, false)
        }
        if !admitted {
            let peer = ConnectionRecord(remote: channel.remoteAddress).remote
            let why = draining ? "server shutting down" : "over --max-connections (\(count) open)"
            logger.warning("connection from \(peer) refused: \(why)", metadata: ["peer": "\(peer)", "event": "refused"])
            channel.close(promise: nil)
        }
        return admitted
    }

    private func serve(_ channel: any Channel) async {
        let key = ObjectIdentifier(channel)
        defer { _ = state.withLockedValue { $0.connections.removeValue(forKey: key) } }
        guard let record = state.withLockedValue({ $0.connections[key]?.record }) else { return }
        let async: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        let handshake: EventLoopFuture<Void>
        do {
            (async, handshake) = try await channel.eventLoop.submit {
                let events = try channel.pipeline.syncOperations.handler(type: HandshakeEventsHandler.self)
                let async = try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                try channel.syncOptions?.setOption(.autoRead, value: true)
                return (async, events.handshake.futureResult)
            }.get()
        } catch {
            // NIOSSL reads by itself during the handshake, so a bad client can fail before we got here.
            record.noteClose("closed during the handshake")
            channel.close(promise: nil)
            logEnded(record)
            return
        }
        // Reads only flow while the inbound stream is iterated, so the loop starts at once; the TLS layer
        // delivers no message before the handshake (and the verification that sets the identity) completed.
        handshake.whenSuccess {
            if let identity = record.identity { self.logConnected(record, identity: identity) }
        }
        do {
            try await async.executeThenClose { inbound, outbound in
                try await self.exchange(inbound: inbound, outbound: outbound, channel: channel, record: record)
            }
        } catch {
            record.noteClose(ErrorDescription.describe(error, record: record, handshakeCompleted: record.identity != nil))
        }
        logEnded(record)
    }

    private func exchange(
        inbound: NIOAsyncChannelInboundStream<ByteBuffer>, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>,
        channel: any Channel, record: ConnectionRecord
    ) async throws {
        let framing = configuration.framing, limit = configuration.maximumMessageBytes
        do {
            for try await message in inbound {
                if record.identity == nil {
                    try await verifyResumedSession(channel: channel, record: record)
                }
                guard let identity = record.identity else { return }
                guard message.readableBytes <= limit else {
                    try await refuseTooLong(channel: channel, record: record)
                    return
                }
                record.busy = true
                let reply: ByteBuffer
                do {
                    reply = try await handler(message, identity)
                } catch {
                    logger.error("handler failed for \(record.remote): \(error)")
                    reply = ByteBuffer(string: "ERR internal error")
                }
                try await outbound.write(framing.frame(reply, allocator: channel.allocator))
                record.countMessage()
                record.busy = false
                if state.withLockedValue({ $0.draining }) {
                    record.noteClose("server shutting down")
                    return
                }
            }
            record.noteClose("closed by peer")
        } catch is ByteToMessageDecoderError.PayloadTooLargeError {
            try await refuseTooLong(channel: channel, record: record)
        }
    }

    /// A resumed TLS session skips the verification callback: verify the certificate it carries now, against
    /// today's CAs, CRLs and rules, so resumption can never let a revoked or expired client back in.
    private func verifyResumedSession(channel: any Channel, record: ConnectionRecord) async throws {
        let verifier = current.withLockedValue { $0.verifier }
        if let peer = try await channel.nioSSL_peerCertificate().get(),
           await verifier.verify([try peer.toDERBytes()], record: record), let identity = record.identity {
            logConnected(record, identity: identity, resumed: true)
        } else {
            record.noteClose("resumed session refused: " + (record.verificationFailure ?? "no client certificate"))
        }
    }

    /// Replies `ERR …` to an over-long message and closes: the write completes before the close.
    private func refuseTooLong(channel: any Channel, record: ConnectionRecord) async throws {
        let limit = configuration.maximumMessageBytes
        record.noteClose("message too long: over \(limit) bytes")
        let error = ByteBuffer(string: "ERR message too long: the limit is \(limit) bytes")
        try await channel.writeAndFlush(configuration.framing.frame(error, allocator: channel.allocator)).get()
    }

    private func beginShutdown(_ serverChannel: any Channel) {
        let idle = state.withLockedValue { state -> [any Channel] in
            state.draining = true
            return state.connections.values.filter { !$0.record.busy }.map(\.channel)
        }
        logger.info("shutting down: no new connections; \(idle.count) idle connection(s) closed, in-flight replies may finish")
        serverChannel.close(promise: nil)
        for channel in idle { channel.close(promise: nil) }
        let grace = configuration.shutdownGracePeriod
        serverChannel.eventLoop.scheduleTask(in: grace) { [self] in
            let rest = state.withLockedValue { $0.connections.values.map(\.channel) }
            for channel in rest { channel.close(promise: nil) }
        }
    }

    private func logConnected(_ record: ConnectionRecord, identity: PeerIdentity, resumed: Bool = false) {
        let session = record.session
        logger.info(
            "connection from \(record.remote): verified \(identity), \(session.summary)\(resumed ? " (resumed session)" : "")",
            metadata: [
                "event": "connected", "peer": "\(record.remote)", "subject": "\(identity.subject)",
                "serial": "\(identity.serial)", "sans": "\(identity.alternativeNames.joined(separator: ","))",
                "tls_version": "\(session.tlsVersion)", "cipher": "\(session.cipherSuite)",
                "group": "\(session.keyExchangeGroup ?? "unknown")",
            ])
    }

    private func logEnded(_ record: ConnectionRecord) {
        let reason = record.closeReason ?? "closed"
        let seconds = Date().timeIntervalSince(record.started)
        let who = record.identity.map { " (\($0.subject))" } ?? ""
        let text = "connection from \(record.remote)\(who) ended: \(reason); \(record.messages) message(s), \(String(format: "%.3f", seconds)) s"
        let metadata: Logger.Metadata = [
            "event": "ended", "peer": "\(record.remote)", "reason": "\(reason)", "messages": "\(record.messages)",
        ]
        if record.identity == nil {
            logger.warning("\(text)", metadata: metadata)
        } else {
            logger.info("\(text)", metadata: metadata)
        }
    }
}
