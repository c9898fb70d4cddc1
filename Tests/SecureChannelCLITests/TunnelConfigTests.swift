import Foundation
import SecureChannelPKI
import TestSupport
import Testing

@Suite("CLI: tunnel --config", .timeLimit(.minutes(3)))
struct TunnelConfigTests {
    /// A port that was free a moment ago (bound to 0, read back, closed).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    @Test(
        "two tunnels from one file carry a page end to end",
        .enabled(if: Tools.enabled("curl", "python3"), "needs curl and python3"))
    func pairFromFile() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        try FileManager.default.createDirectory(atPath: dir.file("www"), withIntermediateDirectories: true)
        try SecureFile.write("from the config file\n", to: dir.file("www/index.html"), mode: 0o644)
        let (http, httpPort) = try await TunnelCLITests.httpServer(dir.file("www"))
        defer { http.stop() }
        let serverPort = try Self.freePort()
        let clientPort = try Self.freePort()
        try SecureFile.write(
            """
            metrics: 127.0.0.1:0
            tunnels:
              - name: web-server
                mode: server
                listen: 127.0.0.1:\(serverPort)
                target: 127.0.0.1:\(httpPort)
                cert: Jill.crt
                key: Jill.key
                ca: ca.crt
                allow-cn: [Chris]
              - name: web-client
                mode: client
                listen: 127.0.0.1:\(clientPort)
                target: 127.0.0.1:\(serverPort)
                server-name: localhost
                cert: Chris.crt
                key: Chris.key
                ca: ca.crt
            """, to: dir.file("tunnels.yaml"), mode: 0o644)
        let process = try RunningProcess(try Tools.securechannel(), ["tunnel", "--config", dir.file("tunnels.yaml")])
        defer { process.stop() }
        let output = try await process.waitForOutput { $0.components(separatedBy: "listening on").count > 2 }
        #expect(output.contains("(web-server: server") && output.contains("(web-client: client"))
        let page = try await Tools.run(
            try Tools.require("curl"), ["-sS", "--max-time", "10", "http://127.0.0.1:\(clientPort)/index.html"])
        #expect(page.stdout == "from the config file\n", "\(page.stderr)")

        // One metrics endpoint for the process, one `listener` label per tunnel.
        // (after both ends logged the connection's end: the client end adds its bytes then)
        try await process.waitForOutput { $0.components(separatedBy: " ended: ").count > 2 }
        let metricsPort = try #require(process.port(after: "metrics on http://"))
        let scrape = try await OperationsTests.curl("http://127.0.0.1:\(metricsPort)/metrics")
        #expect(
            OperationsTests.sample(scrape.body, #"securechannel_connections_verified_total{listener="web-server"}"#)
                == 1, "\(scrape.body)")
        #expect(
            OperationsTests.sample(scrape.body, #"securechannel_connections_verified_total{listener="web-client"}"#)
                == 1)
        #expect(
            (OperationsTests.sample(scrape.body, #"securechannel_bytes_sent_total{listener="web-client"}"#) ?? 0) > 20)
        #expect(
            OperationsTests.sample(
                scrape.body, #"securechannel_certificate_expiry_seconds{listener="web-client",certificate="client"}"#)
                != nil)
        #expect(try await OperationsTests.curl("http://127.0.0.1:\(metricsPort)/healthz").status == 200)
    }

    @Test("one bad entry is reported with its name and line, and nothing starts")
    func badEntry() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        try SecureFile.write(
            """
            tunnels:
              - name: good
                mode: server
                listen: 127.0.0.1:0
                target: 127.0.0.1:6379
                cert: Jill.crt
                key: Jill.key
                ca: ca.crt
                allow-any-client: true
              - name: typo
                mode: server
                listen: 127.0.0.1:0
                target: 127.0.0.1:6379
                cert: Jill.crt
                key: Jill.key
                ca: ca.crt
                alow-cn: [Chris]
            """, to: dir.file("bad.yaml"), mode: 0o644)
        let result = try await CLI.run(["tunnel", "--config", dir.file("bad.yaml")])
        #expect(result.status != 0)
        #expect(
            result.stderr.contains("tunnel 'typo' (line 10)")
                && result.stderr.contains("line 17: unknown key 'alow-cn' for a server tunnel"), "\(result.stderr)")
        #expect(!result.stdout.contains("listening on"))
        try SecureFile.write(
            "tunnels:\n  - name: remote\n    mode: server\n    listen: 127.0.0.1:0\n    target: 192.0.2.1:80\n    cert: Jill.crt\n    key: Jill.key\n    ca: ca.crt\n    allow-any-client: true\n",
            to: dir.file("unsafe.yaml"), mode: 0o644)
        let unsafe = try await CLI.run(["tunnel", "--config", dir.file("unsafe.yaml")])
        #expect(
            unsafe.status != 0 && unsafe.stderr.contains("tunnel 'remote' (line 2)")
                && unsafe.stderr.contains("set 'unsafe-target: true'"))
    }
}
