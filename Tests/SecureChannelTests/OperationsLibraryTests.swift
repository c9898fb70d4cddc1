import Foundation
import Logging
import NIOCore
import SecureChannel
import SecureChannelMetrics
import SecureChannelPKI
import ServiceLifecycle
import TestSupport
import Testing

@Suite("Operations in the library: PROXY protocol v2 parsing, /healthz during a drain", .timeLimit(.minutes(2)))
struct OperationsLibraryTests {
    static let v4 = try! SocketAddress(ipAddress: "203.0.113.7", port: 51_000)
    static let v4Destination = try! SocketAddress(ipAddress: "10.0.0.1", port: 8443)

    @Test("a v2 header (with TLVs) gives the client address and its exact length; the bytes after it are untouched")
    func parsesV2() throws {
        var header = ProxyProtocolHeader(
            source: Self.v4, destination: Self.v4Destination, tlsVersion: "TLSv1.3", commonName: "Chris",
            cipher: nil, clientCertificate: nil
        ).encode()
        let length = header.readableBytes
        header.writeString("\u{16}\u{03}\u{01}rest of the stream")
        #expect(ProxyProtocolHeader.parse(header) == .header(length: length, source: Self.v4))
        let v6 = try SocketAddress(ipAddress: "2001:db8::5", port: 4_000)
        let header6 = ProxyProtocolHeader(
            source: v6, destination: try SocketAddress(ipAddress: "2001:db8::1", port: 443), tlsVersion: "TLSv1.3",
            commonName: nil, cipher: nil, clientCertificate: nil
        ).encode()
        #expect(ProxyProtocolHeader.parse(header6) == .header(length: header6.readableBytes, source: v6))
    }

    @Test("partial headers ask for more; v1, garbage, TLS, bad versions and commands are refused with a reason")
    func refusesOthers() throws {
        let whole = ProxyProtocolHeader(
            source: Self.v4, destination: Self.v4Destination, tlsVersion: "TLSv1.3", commonName: nil, cipher: nil,
            clientCertificate: nil
        ).encode()
        for cut in [1, 11, 12, 15, 16, whole.readableBytes - 1] {
            #expect(ProxyProtocolHeader.parse(whole.getSlice(at: 0, length: cut)!) == .needMore, "cut at \(cut)")
        }
        func reason(_ bytes: [UInt8]) -> String? {
            if case .invalid(let reason) = ProxyProtocolHeader.parse(ByteBuffer(bytes: bytes)) { return reason }
            return nil
        }
        #expect(reason(Array("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n".utf8))?.contains("v1") == true)
        #expect(reason([0x16, 0x03, 0x01, 0x00, 0x05])?.contains("no PROXY protocol v2 header") == true)
        var version1 = Array(whole.readableBytesView)
        version1[12] = 0x11
        #expect(reason(version1)?.contains("version 1") == true)
        var command = Array(whole.readableBytesView)
        command[12] = 0x2F
        #expect(reason(command)?.contains("command") == true)
        var local = Array(whole.readableBytesView)
        local[12] = 0x20  // LOCAL: the proxy's own connection (a health check); no client address
        #expect(
            ProxyProtocolHeader.parse(ByteBuffer(bytes: local)) == .header(length: whole.readableBytes, source: nil))
        var short = Array(whole.readableBytesView.prefix(16))
        short[14] = 0
        short[15] = 4  // claims IPv4 addresses in 4 bytes
        #expect(reason(short + [1, 2, 3, 4])?.contains("too short") == true)
    }

    @Test("/healthz answers 200 while serving and 503 while draining; the reply in flight still arrives")
    func healthDuringDrain() async throws {
        let pki = try TestPKI()
        defer { pki.cleanup() }
        let (entered, enteredContinuation) = AsyncStream<Void>.makeStream()
        let (release, releaseContinuation) = AsyncStream<Void>.makeStream()
        var configuration = MessageServerConfiguration(
            identity: try pki.identity("Jill"), trust: pki.trust, rules: .anyClient)
        configuration.shutdownGracePeriod = .seconds(30)
        let logger = Logger(label: "test.health")
        let endpoint = PrometheusEndpoint(host: "127.0.0.1", port: 0, logger: logger)
        configuration.metricsFactory = endpoint.factory
        let server = try MessageServer(configuration: configuration, logger: logger) { message, _ in
            enteredContinuation.yield()
            for await _ in release { break }
            return message
        }
        endpoint.reportReadiness { server.isReady }
        let services = ServiceGroup(
            configuration: .init(services: [.init(service: endpoint), .init(service: server)], logger: logger))
        let running = Task { try await services.run() }
        let healthPort = try #require(try await endpoint.listeningAddress().port)
        let port = try #require(try await server.listeningAddress().port)

        func health() async throws -> String {
            let socket = try await RawTCP.connect(port: healthPort)
            try socket.send(Array("GET /healthz HTTP/1.0\r\n\r\n".utf8))
            return String(decoding: await socket.receiveAll().bytes, as: UTF8.self)
        }
        #expect(try await health().hasPrefix("HTTP/1.0 200 OK"))

        let client = try await MessageClient.connect(
            MessageClientConfiguration(
                host: "127.0.0.1", port: port, serverName: "localhost", identity: try pki.identity("Chris"),
                trust: pki.trust, timeout: .seconds(30)))
        let reply = Task { try await client.send("in flight") }
        for await _ in entered { break }
        await services.triggerGracefulShutdown()
        // Draining: the load balancer is told to send no one here, while the reply in flight may finish.
        var answer = try await health()
        for _ in 0..<100 where !answer.hasPrefix("HTTP/1.0 503") {
            try await Task.sleep(for: .milliseconds(20))
            answer = try await health()
        }
        #expect(answer.hasPrefix("HTTP/1.0 503 Service Unavailable"), "\(answer)")
        releaseContinuation.yield()
        #expect(try await reply.value == "in flight")
        await client.close()
        try await running.value
    }
}
