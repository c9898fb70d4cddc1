import Foundation
import SecureChannelPKI
import TestSupport
import Testing

@Suite("CLI: tunnel client and server with real programs", .timeLimit(.minutes(3)))
struct TunnelCLITests {
    /// Starts `securechannel tunnel …` and waits for its `listening on` line.
    static func start(_ arguments: [String]) async throws -> (RunningProcess, Int) {
        let process = try RunningProcess(try Tools.securechannel(), ["tunnel"] + arguments)
        do {
            try await process.waitForOutput { $0.contains("listening on ") }
        } catch {
            process.stop()
            throw error
        }
        return (process, try #require(process.port(after: "listening on ")))
    }

    /// python3 -m http.server on a free port, serving `dir`.
    static func httpServer(_ dir: String) async throws -> (RunningProcess, Int) {
        let python = try Tools.require("python3")
        let server = try RunningProcess(
            python,
            [
                "-u", "-c",
                """
                import http.server, functools, sys
                handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
                httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
                print("PORT:%d" % httpd.server_address[1], flush=True)
                httpd.serve_forever()
                """, dir,
            ])
        try await server.waitForOutput { $0.contains("PORT:") }
        return (server, try #require(server.port(after: "PORT")))
    }

    @Test(
        "curl → tunnel client → tunnel server → python http.server returns the page; the wire between the tunnels shows none of it",
        .enabled(if: Tools.enabled("curl", "python3"), "needs curl and python3"))
    func curlThroughTunnels() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        let marker = "PAGE-MARKER-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir.file("www"), withIntermediateDirectories: true)
        try SecureFile.write("<html>\(marker)</html>\n", to: dir.file("www/index.html"), mode: 0o644)
        let (http, httpPort) = try await Self.httpServer(dir.file("www"))
        defer { http.stop() }
        let (server, serverPort) = try await Self.start([
            "server", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:\(httpPort)", "--cert", dir.file("Jill.crt"),
            "--key", dir.file("Jill.key"), "--ca", dir.file("ca.crt"), "--allow-cn", "Chris",
        ])
        defer { server.stop() }
        let (client, clientPort) = try await Self.start([
            "client", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:\(serverPort)", "--server-name", "localhost",
            "--cert", dir.file("Chris.crt"), "--key", dir.file("Chris.key"), "--ca", dir.file("ca.crt"),
        ])
        defer { client.stop() }
        let fetch = {
            try await Tools.run(
                try Tools.require("curl"), ["-sS", "--max-time", "10", "http://127.0.0.1:\(clientPort)/index.html"])
        }
        var page: ProcessResult?
        let capturing = Tools.enabled("tshark") && getuid() == 0
        if capturing {
            let pcap = try await WireCaptureTests.capture(port: serverPort, into: dir) {
                page = try await fetch()
            }
            let raw = try SecureFile.read(pcap)
            let streams = try await WireCaptureTests.streams(pcap)
            #expect(streams.count > 500, "the capture saw the tunnel's traffic")
            #expect(!WireCaptureTests.contains(raw, marker) && !WireCaptureTests.contains(streams, marker))
            #expect(!WireCaptureTests.contains(streams, "GET /index"))
        } else {
            page = try await fetch()
        }
        #expect(page?.status == 0, "\(page?.stderr ?? "no result")")
        #expect(page?.stdout.contains(marker) == true)
        let log = try await server.waitForOutput { $0.contains("bytes back") }
        #expect(log.contains("verified CN=Chris"))
    }

    @Test("the plaintext side must be local unless --unsafe-target / --unsafe-listen")
    func unsafeRefused() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        let server = try await CLI.run([
            "tunnel", "server", "--listen", "127.0.0.1:0", "--target", "192.0.2.10:80", "--cert", dir.file("Jill.crt"),
            "--key", dir.file("Jill.key"), "--ca", dir.file("ca.crt"), "--allow-any-client",
        ])
        #expect(server.status != 0 && server.stderr.contains("--unsafe-target"))
        let client = try await CLI.run([
            "tunnel", "client", "--listen", "0.0.0.0:0", "--target", "127.0.0.1:1", "--cert", dir.file("Chris.crt"),
            "--key", dir.file("Chris.key"), "--ca", dir.file("ca.crt"),
        ])
        #expect(client.status != 0 && client.stderr.contains("--unsafe-listen"))
    }
}
