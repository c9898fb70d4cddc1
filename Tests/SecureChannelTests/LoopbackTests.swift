import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SecureChannel
import SecureChannelPKI
import TestSupport
import Testing

@Suite("Loopback: MessageServer and MessageClient", .timeLimit(.minutes(3)))
struct LoopbackTests {
    @Test("a message and its reply; both sides see who the other is; TLS 1.3 with X25519MLKEM768")
    func roundTrip() async throws {
        let pki = try TestPKI()
        defer { pki.cleanup() }
        let seen = NIOLockedValueBox<PeerIdentity?>(nil)
        let server = try await RunningServer.start(
            pki, rules: AccessRules(commonNames: ["Chris"]),
            handler: { message, peer in
                seen.withLockedValue { $0 = peer }
                return ByteBuffer(string: "re: " + String(buffer: message))
            })
        let client = try await MessageClient.connect(
            server.clientConfiguration(try pki.identity("Chris"), trust: pki.trust))
        #expect(try await client.send("Hello Jill") == "re: Hello Jill")
        #expect(client.server.commonName == "Jill")
        #expect(client.server.dnsNames == ["localhost"])
        #expect(seen.withLockedValue { $0 }?.commonName == "Chris")
        #expect(client.session.tlsVersion == "TLSv1.3")
        #expect(client.session.keyExchangeGroup == "X25519MLKEM768")
        #expect(
            client.session.cipherSuite.hasPrefix("TLS_AES_") || client.session.cipherSuite.hasPrefix("TLS_CHACHA20"))
        await client.close()
        try await server.stop()
    }

    @Test("length framing carries binary messages")
    func binary() async throws {
        let pki = try TestPKI()
        defer { pki.cleanup() }
        let server = try await RunningServer.start(pki) { $0.framing = .length }
        let client = try await MessageClient.connect(
            server.clientConfiguration(try pki.identity("Chris"), trust: pki.trust, framing: .length))
        let payload = ByteBuffer(bytes: (0..<1000).map { UInt8($0 % 256) })
        #expect(try await client.send(payload) == payload)
        await client.close()
        try await server.stop()
    }

    @Test("handshake matrix: each bad certificate or name is refused with its own reason")
    func handshakeMatrix() async throws {
        let pki = try TestPKI()
        defer { pki.cleanup() }
        let other = try TestPKI()
        defer { other.cleanup() }
        let server = try await RunningServer.start(pki, rules: AccessRules(commonNames: ["Chris", "Old"]))
        let chris = try pki.identity("Chris")

        // Accepted.
        let ok = try await MessageClient.connect(server.clientConfiguration(chris, trust: pki.trust))
        #expect(try await ok.send("ping") == "ping")
        await ok.close()

        // Client certificate problems: under TLS 1.3 they show after the handshake, on the first exchange.
        let rejected: [(String, TLSIdentity)] = [
            ("another CA", try other.identity("Chris")),
            ("expired", try pki.client("Old", now: Date() - 10 * 86_400, days: 1)),
            ("server certificate as client", try pki.identity("Jill")),
            ("not allowed by rules", try pki.client("Eve")),
        ]
        for (label, identity) in rejected {
            let code = await channelErrorCode {
                var configuration = server.clientConfiguration(identity, trust: pki.trust)
                configuration.checksOwnCertificate = false  // the server must refuse it too
                let client = try await MessageClient.connect(configuration)
                _ = try await client.send("should not pass")
            }
            #expect(code == .clientCertificateRejected, "\(label): \(String(describing: code))")
        }

        // Server problems, seen by the client.
        let wrongName = await channelErrorCode {
            _ = try await MessageClient.connect(
                server.clientConfiguration(chris, trust: pki.trust, serverName: "jill.example"))
        }
        #expect(wrongName == .serverCertificateRejected)
        let wrongCA = await channelErrorCode {
            _ = try await MessageClient.connect(
                server.clientConfiguration(try other.identity("Chris"), trust: other.trust))
        }
        #expect(wrongCA == .serverCertificateRejected)

        // The server carried on throughout.
        let again = try await MessageClient.connect(server.clientConfiguration(chris, trust: pki.trust))
        #expect(try await again.send("still here") == "still here")
        await again.close()
        try await server.stop()
    }

    @Test("strict name check: an IP SAN equal to the address does not stand in for another name")
    func strictName() async throws {
        let pki = try TestPKI()
        defer { pki.cleanup() }
        let server = try await RunningServer.start(pki)
        let chris = try pki.identity("Chris")
        // Jill's certificate has IP:127.0.0.1, and we connect to 127.0.0.1 — but ask for another name.
        let code = await channelErrorCode {
            _ = try await MessageClient.connect(
                server.clientConfiguration(chris, trust: pki.trust, serverName: "db.example"))
        }
        #expect(code == .serverCertificateRejected)
        // Asking for the IP itself is fine.
        let byIP = try await MessageClient.connect(
            server.clientConfiguration(chris, trust: pki.trust, serverName: "127.0.0.1"))
        #expect(try await byIP.send("ip") == "ip")
        await byIP.close()
        try await server.stop()
    }

    @Test("an over-long message gets ERR and a close; other connections are untouched")
    func overLongMessage() async throws {
        let pki = try TestPKI()
        defer { pki.cleanup() }
        let server = try await RunningServer.start(pki) { $0.maximumMessageBytes = 100 }
        let chris = try pki.identity("Chris")
        let bystander = try await MessageClient.connect(server.clientConfiguration(chris, trust: pki.trust))
        #expect(try await bystander.send("before") == "before")
        var configuration = server.clientConfiguration(chris, trust: pki.trust)
        configuration.maximumMessageBytes = 10_000
        let offender = try await MessageClient.connect(configuration)
        let reply = try await offender.send(String(repeating: "x", count: 5_000))
        #expect(reply.hasPrefix("ERR "))
        let next = await channelErrorCode { _ = try await offender.send("again") }
        #expect(next == .connectionClosed)
        #expect(try await bystander.send("after") == "after")
        await bystander.close()
        try await server.stop()
    }

    @Test("beyond --max-connections a client is refused at once, and admitted again when a slot frees")
    func maxConnections() async throws {
        let pki = try TestPKI()
        defer { pki.cleanup() }
        let server = try await RunningServer.start(pki) { $0.maximumConnections = 2 }
        let chris = try pki.identity("Chris")
        let first = try await MessageClient.connect(server.clientConfiguration(chris, trust: pki.trust))
        let second = try await MessageClient.connect(server.clientConfiguration(chris, trust: pki.trust))
        #expect(try await first.send("1") == "1")
        #expect(try await second.send("2") == "2")
        let started = Date()
        let third = await channelErrorCode {
            let client = try await MessageClient.connect(server.clientConfiguration(chris, trust: pki.trust))
            _ = try await client.send("3")
        }
        #expect(third != nil)
        #expect(Date().timeIntervalSince(started) < 5)  // refused, not queued until a timeout
        await first.close()
        // The slot frees once the server sees the close; retry until it does (bounded).
        var admitted = false
        for _ in 0..<50 where !admitted {
            if let client = try? await MessageClient.connect(server.clientConfiguration(chris, trust: pki.trust)),
                (try? await client.send("4")) == "4"
            {
                admitted = true
                await client.close()
            }
        }
        #expect(admitted)
        await second.close()
        try await server.stop()
    }

    @Test("a client that never finishes the handshake is cut off after --handshake-timeout")
    func handshakeTimeout() async throws {
        let pki = try TestPKI()
        defer { pki.cleanup() }
        let server = try await RunningServer.start(pki) { $0.handshakeTimeout = .milliseconds(300) }
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: server.port).get()
        // Send nothing: the server must close within the timeout (the time limit fails the test otherwise).
        try await channel.closeFuture.get()
        try await server.stop()
    }

    @Test(
        "a server cancelled (not shut down gracefully) returns and closes its open connections, for both kinds of handler",
        arguments: [false, true])
    func cancelled(replying: Bool) async throws {
        let pki = try TestPKI()
        defer { pki.cleanup() }
        var configuration = MessageServerConfiguration(
            identity: try pki.identity("Jill"), trust: pki.trust, rules: .anyClient)
        configuration.handshakeTimeout = .seconds(60)  // beside the full suite a debug build's handshake can be slow
        let logger = Logger(label: "test.server")
        let server =
            replying
            ? try MessageServer(configuration: configuration, logger: logger, replying: { message, _ in message })
            : try MessageServer(configuration: configuration, logger: logger, handler: { message, _ in message })
        let task = Task { try await server.run() }
        let port = try #require(try await server.listeningAddress().port)
        let client = try await MessageClient.connect(
            MessageClientConfiguration(
                host: "127.0.0.1", port: port, serverName: "localhost", identity: try pki.identity("Chris"),
                trust: pki.trust, timeout: .seconds(60)))
        #expect(try await client.send("hi") == "hi")
        task.cancel()
        _ = try? await task.value  // returns although the client never closed (the suite's time limit says if not)
        await client.waitUntilClosed()
        let after = await channelErrorCode { _ = try await client.send("x") }
        #expect(after == .connectionClosed)
    }

    @Test("an idle connection is closed after --idle-timeout")
    func idleTimeout() async throws {
        let pki = try TestPKI()
        defer { pki.cleanup() }
        let server = try await RunningServer.start(pki) { $0.idleTimeout = .seconds(1) }
        let client = try await MessageClient.connect(
            server.clientConfiguration(try pki.identity("Chris"), trust: pki.trust))
        #expect(try await client.send("hi") == "hi")
        // Send nothing more: the server must close the connection (the suite's time limit fails the test otherwise).
        let started = Date()
        await client.waitUntilClosed()
        #expect(Date().timeIntervalSince(started) < 10)
        let after = await channelErrorCode { _ = try await client.send("x") }
        #expect(after == .connectionClosed)
        try await server.stop()
    }

    @Test("200 concurrent clients, many messages each: every reply matches its request, in order")
    func concurrentClients() async throws {
        let pki = try TestPKI()
        defer { pki.cleanup() }
        // Generous deadlines: 200 handshakes at once in a debug build, beside the rest of the suite on 2 cores, can
        // take longer than the default 10 s; this test is about the replies, not the speed.
        let server = try await RunningServer.start(pki) { $0.handshakeTimeout = .seconds(60) }
        let chris = try pki.identity("Chris")
        let clients = 200
        let messages = 25
        var configuration = server.clientConfiguration(chris, trust: pki.trust)
        configuration.timeout = .seconds(60)
        let failures = try await withThrowingTaskGroup(of: Int.self) { group in
            for c in 0..<clients {
                group.addTask { [configuration] in
                    let client = try await MessageClient.connect(configuration)
                    var bad = 0
                    for m in 0..<messages {
                        let text = "client \(c) message \(m)"
                        if try await client.send(text) != text { bad += 1 }
                    }
                    await client.close()
                    return bad
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(failures == 0)
        try await server.stop()
    }

    @Test("shutdown while clients keep connecting does not crash, and the server stops")
    func shutdownUnderLoad() async throws {
        let pki = try TestPKI()
        defer { pki.cleanup() }
        let chris = try pki.identity("Chris")
        for _ in 0..<5 {
            let server = try await RunningServer.start(pki) { $0.shutdownGracePeriod = .milliseconds(200) }
            let load = Task {
                await withTaskGroup(of: Void.self) { group in
                    for _ in 0..<20 {
                        group.addTask {
                            for _ in 0..<5 {
                                if let client = try? await MessageClient.connect(
                                    server.clientConfiguration(chris, trust: pki.trust))
                                {
                                    _ = try? await client.send("x")
                                    await client.close()
                                }
                            }
                        }
                    }
                }
            }
            try await server.stop()
            await load.value
        }
    }

    @Test("the server refuses to start without an access rule, and says how to fix it")
    func noRules() throws {
        let pki = try TestPKI()
        defer { pki.cleanup() }
        let configuration = MessageServerConfiguration(
            identity: try pki.identity("Jill"), trust: pki.trust, rules: AccessRules())
        let error = #expect(throws: SecureChannelError.self) {
            _ = try MessageServer(configuration: configuration, logger: .init(label: "x")) { m, _ in m }
        }
        #expect(error?.message.contains("allow any client of the CA") == true)
        #expect(
            error?.message.contains("--") == false, "library errors never name a CLI flag: \(String(describing: error))"
        )
    }

    @Test("a leaf certificate passed as the CA is refused with a clear message")
    func leafAsCA() throws {
        let pki = try TestPKI()
        defer { pki.cleanup() }
        let error = #expect(throws: SecureChannelError.self) {
            _ = try TrustAnchors.load(file: pki.dir.file("Jill.crt"))
        }
        #expect(error?.message.contains("not a CA certificate") == true)
    }

    @Test("a key that does not match its certificate is refused before anything starts")
    func keyMismatch() throws {
        let pki = try TestPKI()
        defer { pki.cleanup() }
        let error = #expect(throws: SecureChannelError.self) {
            _ = try TLSIdentity.load(certificateFile: pki.dir.file("Jill.crt"), keyFile: pki.dir.file("Chris.key"))
        }
        #expect(error?.message.contains("does not belong") == true)
    }
}
