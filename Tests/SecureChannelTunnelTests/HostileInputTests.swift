import Crypto
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import Prometheus
import SecureChannel
import SecureChannelPKI
import SecureChannelTunnel
import ServiceLifecycle
import TestSupport
import Testing
import X509

/// Every hostile input of issue 7, each against a running server while an honest client keeps sending. For each:
/// the server stays up, the honest client loses nothing, and the log names the reason.
@Suite("Hostile inputs: the server stays up, honest clients notice nothing, the log says why", .timeLimit(.minutes(3)))
struct HostileInputTests {
    enum Attack: String, CaseIterable, Sendable {
        case noCertificate, rogueCA, selfSigned, expired, notYetValid, wrongPurpose, caAsClient, revoked, notAllowed
        case sslv3Hello, tls10Hello, tls11Hello, httpRequest, randomBytes, truncatedHelloThenSilence, halfOpenFlood
        case overLongLine, invalidUTF8, byteByByte, disconnectMidMessage, resetMidHandshake, renegotiation
        case hundredCertificateChain, connectionFlood

        /// What the attack is counted as in `securechannel_connections_refused_total` (nil: not a refusal).
        var refusal: RefusalReason? {
            switch self {
            case .noCertificate: return .noCertificate
            case .rogueCA, .selfSigned: return .unknownCA
            case .expired, .notYetValid: return .expired
            case .wrongPurpose, .hundredCertificateChain: return .badCertificate
            case .revoked: return .revoked
            case .notAllowed: return .notAllowed
            case .caAsClient, .sslv3Hello, .tls10Hello, .tls11Hello, .httpRequest, .randomBytes, .resetMidHandshake:
                return .handshakeFailed
            case .truncatedHelloThenSilence, .halfOpenFlood: return .handshakeTimeout
            case .connectionFlood: return .limit
            case .overLongLine, .invalidUTF8, .byteByByte, .disconnectMidMessage, .renegotiation: return nil
            }
        }
    }

    /// Attacks on the TLS layer, which the tunnel server shares with `serve`; the others are about messages.
    static let tunnelAttacks: [Attack] = Attack.allCases.filter {
        ![.overLongLine, .invalidUTF8, .byteByByte, .disconnectMidMessage].contains($0)
    }

    @Test("hostile input against serve", .serialized, arguments: Attack.allCases)
    func hostile(_ attack: Attack) async throws {
        try await Self.attack(attack, on: .messageServer)
    }

    @Test("hostile input against the tunnel server", .serialized, arguments: tunnelAttacks)
    func hostileTunnel(_ attack: Attack) async throws {
        try await Self.attack(attack, on: .tunnelServer)
    }

    static func attack(_ attack: Attack, on kind: Harness.Kind) async throws {
        if (attack == .renegotiation || attack == .caAsClient) && !Tools.enabled("openssl") {
            try Tools.require("openssl")  // skips (or fails under SECURECHANNEL_REQUIRE_INTEROP=1) naming the tool
        }
        let harness = try await Harness.start(for: attack, kind: kind)
        do {
            try await harness.run(attack)
            if let reason = attack.refusal {
                // The refusal is counted under its reason (before the log line the attack waited for is written).
                let counted = harness.refusals(reason)
                #expect(
                    counted >= (attack == .halfOpenFlood ? 1_000 : 1),
                    "\(attack) counted \(counted) times as \(reason.rawValue)")
                if attack == .connectionFlood { #expect(counted == 13) }
            }
            try await harness.finish()
        } catch {
            Issue.record("server log: \(harness.log.all.suffix(10))")
            try? await harness.stop()
            throw error
        }
    }

    /// One server (serve's `MessageServer`, or a `TunnelServer` in front of a plaintext echo) with a captured
    /// log, and an honest client sending numbered messages the whole time.
    struct Harness {
        enum Kind: Sendable { case messageServer, tunnelServer }

        let pki: TestPKI
        let port: Int
        let log: LogCapture
        let registry: PrometheusCollectorRegistry
        let listener: String
        let honest: HonestClient
        let reload: @Sendable () async throws -> Void
        let stop: @Sendable () async throws -> Void

        static func start(for attack: Attack, kind: Kind) async throws -> Harness {
            let pki = try TestPKI()
            _ = try pki.client("Eve")
            _ = try pki.ca.generateCRL()
            let log = LogCapture()
            let rules = AccessRules(commonNames: ["Chris", "Old", "Young", "Revoked"])
            let maximumConnections = attack == .connectionFlood ? 8 : 3_000
            let tls = attack == .renegotiation ? TLSPolicy(minimumVersion: .tls12) : TLSPolicy()
            let port: Int
            let reload: @Sendable () async throws -> Void
            let stop: @Sendable () async throws -> Void
            let registry = PrometheusCollectorRegistry()
            let factory = PrometheusMetricsFactory(registry: registry)
            switch kind {
            case .messageServer:
                let server = try await RunningServer.start(
                    pki, rules: rules, watching: pki.files(crl: true),
                    configure: { configuration in
                        configuration.maximumMessageBytes = 1_000
                        configuration.handshakeTimeout = .seconds(4)
                        configuration.maximumConnections = maximumConnections
                        configuration.tls = tls
                        configuration.metricsFactory = factory
                    }, log: log)
                port = server.port
                reload = { _ = server.server.reload() }
                stop = { try await server.stop() }
            case .tunnelServer:
                let target = try await EchoTarget.start()
                var configuration = TunnelServerConfiguration(
                    host: "127.0.0.1", port: 0, target: .tcp(host: "127.0.0.1", port: target.port),
                    files: pki.files(crl: true),
                    rules: rules)
                configuration.handshakeTimeout = .seconds(4)
                configuration.maximumConnections = maximumConnections
                configuration.tls = tls
                configuration.shutdownGracePeriod = .milliseconds(200)
                configuration.metricsFactory = factory
                var logger = Logger(label: "test.tunnel") { _ in log.handler }
                logger.logLevel = .info
                let server = try TunnelServer(configuration: configuration, logger: logger)
                let services = ServiceGroup(configuration: .init(services: [.init(service: server)], logger: logger))
                let task = Task { try await services.run() }
                port = try #require(try await server.listeningAddress().port)
                reload = { _ = server.reload() }
                stop = {
                    await services.triggerGracefulShutdown()
                    try await task.value
                    try await target.stop()
                }
            }
            let honest: HonestClient
            do {
                honest = try await HonestClient.start(
                    Self.clientConfiguration(port: port, try pki.identity("Chris"), trust: pki.trust))
            } catch {
                try? await stop()
                throw SecureChannelError(.connectionFailed, "honest client: \(error); server log: \(log.all)")
            }
            return Harness(
                pki: pki, port: port, log: log, registry: registry,
                listener: kind == .messageServer ? "serve" : "tunnel",
                honest: honest, reload: reload, stop: stop)
        }

        /// `securechannel_connections_refused_total` for `reason`, from the server's metrics.
        func refusals(_ reason: RefusalReason) -> Double {
            let series =
                "securechannel_connections_refused_total{listener=\"\(listener)\",reason=\"\(reason.rawValue)\"} "
            let line = registry.emitToString().split(separator: "\n").first { $0.hasPrefix(series) }
            return line.flatMap { Double($0.dropFirst(series.count)) } ?? 0
        }

        static func clientConfiguration(port: Int, _ identity: TLSIdentity, trust: TrustAnchors)
            -> MessageClientConfiguration
        {
            var configuration = MessageClientConfiguration(
                host: "127.0.0.1", port: port, serverName: "localhost",
                identity: identity, trust: trust, timeout: .seconds(10))
            configuration.checksOwnCertificate = false  // the attacks present wrong certificates on purpose
            return configuration
        }

        /// The honest client must have carried on after the attack, without a single lost or wrong reply.
        func finish() async throws {
            try await honest.waitForProgress(messages: 5)
            let result = await honest.stop()
            #expect(result.failures.isEmpty, "honest client: \(result.failures)")
            #expect(result.sent > 5)
            // And a new honest connection is still served (once the server has seen the attack's connections go,
            // which matters after a flood of --max-connections).
            let configuration = client(try pki.identity("Chris"))
            var reply: String?
            for _ in 0..<50 where reply == nil {
                if let late = try? await MessageClient.connect(configuration) {
                    reply = try? await late.send("after the attack")
                    await late.close()
                } else {
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            #expect(reply == "after the attack")
            try await stop()
            pki.cleanup()
        }

        /// Waits for a log line containing every one of `parts`.
        func expectLog(_ parts: String..., timeout: Double = 10, sourceLocation: SourceLocation = #_sourceLocation)
            async
        {
            let line = await log.waitForLine(timeout: timeout) { line in parts.allSatisfy { line.contains($0) } }
            #expect(line != nil, "no log line with \(parts); log: \(log.all.suffix(8))", sourceLocation: sourceLocation)
        }

        func client(_ identity: TLSIdentity) -> MessageClientConfiguration {
            Self.clientConfiguration(port: port, identity, trust: pki.trust)
        }

        /// Connects with `identity` and sends one message: it must not get a reply.
        func refused(_ identity: TLSIdentity) async {
            let code = await channelErrorCode {
                let client = try await MessageClient.connect(client(identity))
                _ = try await client.send("should not pass")
            }
            #expect(code == .clientCertificateRejected || code == .connectionClosed, "\(String(describing: code))")
        }

        func run(_ attack: Attack) async throws {
            switch attack {
            case .noCertificate:
                #expect(
                    await TLSProbe.exchange(
                        port: port, configuration: TLSProbe.configuration(trust: pki.trust), line: "no cert") == nil)
                await expectLog("no client certificate")
            case .rogueCA:
                let rogue = try TestPKI()
                defer { rogue.cleanup() }
                await refused(try rogue.identity("Chris"))
                // The rogue CA is also called Barry: the name matches, the signature does not.
                await expectLog("CN=Chris", "bad signature")
            case .selfSigned:
                await refused(try Self.selfSignedClient(name: "Mallory"))
                await expectLog("CN=Mallory", "unknown issuer")
            case .expired:
                await refused(try pki.client("Old", now: Date() - 10 * 86_400, days: 1))
                await expectLog("CN=Old", "expired on")
            case .notYetValid:
                await refused(try pki.client("Young", now: Date() + 5 * 86_400, days: 30))
                await expectLog("CN=Young", "not yet valid")
            case .wrongPurpose:
                await refused(try pki.identity("Jill"))
                await expectLog("CN=Jill", "wrong purpose")
            case .caAsClient:
                // Neither MessageClient nor BoringSSL will present a certificate whose keyUsage forbids signing,
                // so OpenSSL plays the attacker.
                let openssl = try Tools.require("openssl")
                let process = try RunningProcess(
                    openssl,
                    [
                        "s_client", "-connect", "127.0.0.1:\(port)", "-servername", "localhost",
                        "-cert", pki.dir.file("ca.crt"), "-key", pki.dir.file("ca.key"), "-CAfile",
                        pki.dir.file("ca.crt"),
                    ])
                defer { process.stop() }
                process.send("I am the CA\n")
                // BoringSSL refuses it before our verification runs: the CA's keyUsage does not allow signing.
                await expectLog("handshake failed", "keyUsage lacks digitalSignature")
            case .revoked:
                let revoked = try pki.client("Revoked")
                try pki.ca.revoke(name: "Revoked", reason: .keyCompromise)
                _ = try pki.ca.generateCRL()
                try await reload()
                await refused(revoked)
                await expectLog("CN=Revoked", "revoked")
            case .notAllowed:
                await refused(
                    try TLSIdentity.load(certificateFile: pki.dir.file("Eve.crt"), keyFile: pki.dir.file("Eve.key")))
                await expectLog("refused by rules", "CN=Eve")
            case .sslv3Hello, .tls10Hello, .tls11Hello:
                let version: UInt16 = attack == .sslv3Hello ? 0x0300 : attack == .tls10Hello ? 0x0301 : 0x0302
                let socket = try await RawTCP.connect(port: port)
                try socket.send(RawTCP.legacyClientHello(version: version))
                let answer = await socket.receiveAll()
                #expect(answer.ended, "the server must close the connection")
                #expect(answer.bytes.first == 0x15, "a TLS alert, not a ServerHello: \(answer.bytes.prefix(8))")
                await expectLog("127.0.0.1:\(socket.localPort)", "unsupported TLS version")
            case .httpRequest:
                let socket = try await RawTCP.connect(port: port)
                try socket.send(Array("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8))
                #expect(await socket.receiveAll().ended)
                await expectLog("127.0.0.1:\(socket.localPort)", "plaintext HTTP")
            case .randomBytes:
                let socket = try await RawTCP.connect(port: port)
                try? socket.send((0..<4_096).map { _ in UInt8.random(in: 0...255) })
                #expect(await socket.receiveAll().ended)
                await expectLog("127.0.0.1:\(socket.localPort)", "handshake failed")
            case .truncatedHelloThenSilence:
                let socket = try await RawTCP.connect(port: port, receiveTimeout: 6)
                try socket.send(Array(RawTCP.legacyClientHello(version: 0x0303).prefix(20)))
                #expect(await socket.receiveAll().ended, "cut off by the handshake timeout")
                await expectLog("127.0.0.1:\(socket.localPort)", "handshake timeout")
            case .halfOpenFlood:
                RawTCP.raiseFileLimit(to: 8_192)
                let hello = Array(RawTCP.legacyClientHello(version: 0x0303).prefix(20))
                let sockets = try await RawTCP.connect(port: port, count: 1_000, receiveTimeout: 8)
                for socket in sockets { try socket.send(hello) }
                // While 1,000 handshakes hang, honest clients are served (the harness client, and a new one).
                try await honest.waitForProgress(messages: 5)
                let fresh = try await MessageClient.connect(client(try pki.identity("Chris")))
                #expect(try await fresh.send("during the flood") == "during the flood")
                await fresh.close()
                // Every half-open handshake is cut off by the timeout.
                let timedOut = await log.waitForCount(of: "handshake timeout", atLeast: 1_000, timeout: 20)
                #expect(timedOut >= 1_000, "\(timedOut) of 1,000 timed out")
                #expect(await sockets[0].receiveAll().ended)
            case .overLongLine:
                var configuration = client(try pki.identity("Chris"))
                configuration.maximumMessageBytes = 100_000
                let offender = try await MessageClient.connect(configuration)
                let reply = try await offender.send(String(repeating: "x", count: 50_000))
                #expect(reply.hasPrefix("ERR message too long"))
                await expectLog("message too long")
            case .invalidUTF8:
                let client = try await MessageClient.connect(client(try pki.identity("Chris")))
                let bytes: [UInt8] = [0xFF, 0xFE, 0xC0, 0x80, 0xED, 0xA0, 0x80, 0x41]
                let reply = try await client.send(ByteBuffer(bytes: bytes))
                #expect(Array(reply.readableBytesView) == bytes, "bytes come back as they were sent")
                await client.close()
            case .byteByByte:
                let reply = await TLSProbe.exchange(
                    port: port, configuration: try TLSProbe.configuration(trust: pki.trust, identity: pki),
                    line: "split into one TLS record per byte", byteByByte: true)
                #expect(reply == "split into one TLS record per byte")
            case .disconnectMidMessage:
                let reply = await TLSProbe.exchange(
                    port: port, configuration: try TLSProbe.configuration(trust: pki.trust, identity: pki),
                    line: "a whole message first", thenLeaveAfter: "half a mess")
                #expect(reply == "a whole message first")
                await expectLog("CN=Chris", "ended inside a message")
            case .resetMidHandshake:
                let socket = try await RawTCP.connect(port: port)
                try socket.send(Array(RawTCP.legacyClientHello(version: 0x0303).prefix(30)))
                socket.reset()
                // A reset can land before the server learnt the peer's address ("connection from unknown").
                await expectLog("ended", "reset by peer")
            case .renegotiation:
                let openssl = try Tools.require("openssl")
                let process = try RunningProcess(
                    openssl,
                    [
                        "s_client", "-connect", "127.0.0.1:\(port)", "-tls1_2", "-servername", "localhost",
                        "-cert", pki.dir.file("Chris.crt"), "-key", pki.dir.file("Chris.key"), "-CAfile",
                        pki.dir.file("ca.crt"),
                    ])
                defer { process.stop() }
                try await process.waitForOutput { $0.contains("Verify return code") }
                process.send("hello before\n")
                try await process.waitForOutput { $0.contains("hello before") }
                process.send("R\n")  // s_client: renegotiate
                try await process.waitForOutput { $0.contains("RENEGOTIATING") }
                await expectLog("CN=Chris", "renegotiation refused")
            case .hundredCertificateChain:
                let reply = await TLSProbe.exchange(
                    port: port,
                    configuration: try TLSProbe.configuration(trust: pki.trust, identity: pki, padChainTo: 100),
                    line: "long chain")
                #expect(reply == nil)
                await expectLog("chain too long (100 certificates")
            case .connectionFlood:
                let identity = try pki.identity("Chris")
                var held: [MessageClient] = []
                var refusedCount = 0
                for _ in 0..<20 {
                    do {
                        let client = try await MessageClient.connect(client(identity))
                        _ = try await client.send("hold")
                        held.append(client)
                    } catch {
                        refusedCount += 1
                    }
                }
                #expect(held.count == 7, "8 slots, one taken by the honest client")
                #expect(refusedCount == 13)
                await expectLog("over the connection limit")
                for client in held { await client.close() }
            }
        }

        /// A self-signed (not CA) certificate with clientAuth, and its key.
        static func selfSignedClient(name: String) throws -> TLSIdentity {
            let key = P256.Signing.PrivateKey()
            let subject = try DistinguishedName { CommonName(name) }
            let certificate = try Certificate(
                version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey), notValidBefore: Date() - 3_600,
                notValidAfter: Date() + 86_400, issuer: subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(KeyUsage(digitalSignature: true))
                    try ExtendedKeyUsage([.clientAuth])
                }, issuerPrivateKey: .init(key))
            return try TLSIdentity(chain: [certificate], privateKey: .init(key))
        }
    }
}

/// Sends numbered messages on one connection until stopped; every reply must equal its message.
final class HonestClient: Sendable {
    private let state = NIOLockedValueBox((sent: 0, failures: [String](), stop: false))
    private let task: NIOLockedValueBox<Task<Void, Never>?> = .init(nil)

    /// Connects and completes a first exchange before returning, so that the attack starts against an
    /// established honest connection. (On a loaded test machine a handshake can outlast a short handshake
    /// timeout; that is the machine, not the attack, so setting up is retried.)
    static func start(_ configuration: MessageClientConfiguration) async throws -> HonestClient {
        let honest = HonestClient()
        var established: MessageClient?
        var lastError: (any Error)?
        for _ in 0..<3 where established == nil {
            do {
                let candidate = try await MessageClient.connect(configuration)
                if try await candidate.send("hello") == "hello" { established = candidate }
            } catch {
                lastError = error
            }
        }
        guard let client = established else {
            throw lastError ?? SecureChannelError(.connectionFailed, "no honest connection")
        }
        honest.task.withLockedValue {
            $0 = Task {
                var number = 0
                while !honest.state.withLockedValue({ $0.stop }) {
                    number += 1
                    let message = "honest \(number) \(UInt64.random(in: 0 ... .max))"
                    do {
                        let reply = try await client.send(message)
                        honest.state.withLockedValue {
                            if reply != message { $0.failures.append("message \(number): got \(reply)") }
                            $0.sent += 1
                        }
                    } catch {
                        honest.state.withLockedValue { $0.failures.append("message \(number): \(error)") }
                        break
                    }
                }
                await client.close()
            }
        }
        return honest
    }

    /// Waits until `messages` more replies arrived (at most 20 s).
    func waitForProgress(messages: Int) async throws {
        let start = state.withLockedValue { $0.sent }
        let deadline = Date() + 20
        while state.withLockedValue({ $0.sent }) < start + messages {
            guard Date() < deadline, state.withLockedValue({ $0.failures.isEmpty }) else { return }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    func stop() async -> (sent: Int, failures: [String]) {
        state.withLockedValue { $0.stop = true }
        await task.withLockedValue { $0 }?.value
        return state.withLockedValue { ($0.sent, $0.failures) }
    }
}

/// A TLS client built directly on NIOSSL, for what `MessageClient` will not do: no certificate, a padded chain,
/// one TLS record per byte, leaving in the middle of a message.
enum TLSProbe {
    static func configuration(trust: TrustAnchors) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates(
            trust.certificates.compactMap {
                try? NIOSSLCertificate(bytes: try $0.serializeAsPEM().derBytes, format: .der)
            })
        configuration.certificateVerification = .noHostnameVerification
        return configuration
    }

    /// Chris's certificate and key; with `padChainTo`, followed by that many minus one self-signed "intermediates"
    /// all named like the CA.
    static func configuration(trust: TrustAnchors, identity pki: TestPKI, padChainTo: Int = 1) throws
        -> TLSConfiguration
    {
        try configuration(
            trust: trust, certificate: pki.dir.file("Chris.crt"), key: pki.dir.file("Chris.key"), padChainTo: padChainTo
        )
    }

    static func configuration(trust: TrustAnchors, certificate: String, key: String, padChainTo: Int = 1) throws
        -> TLSConfiguration
    {
        var configuration = configuration(trust: trust)
        var chain = [try NIOSSLCertificate(file: certificate, format: .pem)]
        for _ in 1..<padChainTo {
            let key = P256.Signing.PrivateKey()
            let name = try DistinguishedName { CommonName("Barry") }
            let certificate = try Certificate(
                version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey), notValidBefore: Date() - 3_600,
                notValidAfter: Date() + 86_400, issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                },
                issuerPrivateKey: .init(key))
            chain.append(try NIOSSLCertificate(bytes: try certificate.serializeAsPEM().derBytes, format: .der))
        }
        configuration.certificateChain = chain.map { .certificate($0) }
        configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
        return configuration
    }

    /// Handshakes, sends `line` (with a newline when `terminate`), and returns the reply line, or nil when the
    /// connection failed or closed without one.
    static func exchange(
        port: Int, configuration: TLSConfiguration, line: String, byteByByte: Bool = false,
        terminate: Bool = true, thenLeaveAfter partial: String? = nil
    ) async -> String? {
        do {
            let context = try NIOSSLContext(configuration: configuration)
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            NIOSSLClientHandler(context: context, serverHostname: "localhost"))
                        return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
            return try await channel.executeThenClose { inbound, outbound in
                let bytes = Array((line + (terminate ? "\n" : "")).utf8)
                if byteByByte {
                    for byte in bytes { try await outbound.write(ByteBuffer(bytes: [byte])) }
                } else {
                    try await outbound.write(ByteBuffer(bytes: bytes))
                }
                guard terminate else { return nil }
                var received = ""
                for try await chunk in inbound {
                    received += String(buffer: chunk)
                    if let newline = received.firstIndex(of: "\n") {
                        if let partial {  // half a message, then gone
                            try await outbound.write(ByteBuffer(string: partial))
                        }
                        return String(received[..<newline])
                    }
                }
                return nil
            }
        } catch {
            print("TLSProbe: \(error)")
            return nil
        }
    }
}

/// A plaintext TCP echo server on 127.0.0.1: the target behind the tunnel server under attack.
struct EchoTarget {
    let channel: any Channel
    var port: Int { channel.localAddress?.port ?? 0 }

    static func start() async throws -> EchoTarget {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Echo()) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return EchoTarget(channel: channel)
    }

    func stop() async throws { try await channel.close() }

    final class Echo: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { context.write(data, promise: nil) }
        func channelReadComplete(context: ChannelHandlerContext) { context.flush() }
        func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    }
}
