import Foundation
import SecureChannelPKI
import TestSupport
import Testing

/// Issue 15: `tunnel server --http-identity-header NAME` with curl and raw pipelined requests through a tunnel pair
/// to a backend that answers each request with its own headers and body.
@Suite("CLI: the verified identity handed to an HTTP backend", .timeLimit(.minutes(3)))
struct HTTPIdentityTests {
    /// An HTTP/1.1 backend (keep-alive) that answers with the request line, its headers and its body.
    static func echoBackend() async throws -> (RunningProcess, Int) {
        let python = try Tools.require("python3")
        let server = try RunningProcess(
            python,
            [
                "-u", "-c",
                """
                import http.server
                class Echo(http.server.BaseHTTPRequestHandler):
                    protocol_version = "HTTP/1.1"
                    def answer(self):
                        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                            body = b""
                            while True:
                                size = int(self.rfile.readline().strip(), 16)
                                if size == 0:
                                    self.rfile.readline()
                                    break
                                body += self.rfile.read(size)
                                self.rfile.readline()
                        else:
                            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                        text = (self.requestline + "\\n" + str(self.headers)).encode() + b"BODY:" + body
                        self.send_response(200)
                        self.send_header("Content-Length", str(len(text)))
                        self.end_headers()
                        self.wfile.write(text)
                    do_GET = answer
                    do_POST = answer
                    def log_message(self, *args): pass
                httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
                print("PORT:%d" % httpd.server_address[1], flush=True)
                httpd.serve_forever()
                """,
            ])
        try await server.waitForOutput { $0.contains("PORT:") }
        return (server, try #require(server.port(after: "PORT")))
    }

    @Test(
        "curl through the tunnels: the identity header is added, a forged one removed; pipelined requests and a chunked POST work; HTTP/2 gets 400"
    )
    func identityHeader() async throws {
        let curl = try Tools.require("curl")
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let pki = dir.file("pki")
        try await CLI.barryJillChris(in: pki)
        try await CLI.ok([
            "ca", "issue", "workload", "--dir", pki, "--spiffe-id", "spiffe://example.org/ns/web", "--dns",
            "web.example",
        ])
        let (backend, backendPort) = try await Self.echoBackend()
        defer { backend.stop() }
        let (server, serverPort) = try await TunnelCLITests.start([
            "server", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:\(backendPort)", "--cert", "\(pki)/Jill.crt",
            "--key", "\(pki)/Jill.key", "--ca", "\(pki)/ca.crt", "--allow-spiffe-id", "spiffe://example.org/ns/*",
            "--http-identity-header", "X-Client-Identity",
        ])
        defer { server.stop() }
        let (client, clientPort) = try await TunnelCLITests.start([
            "client", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:\(serverPort)", "--server-name", "localhost",
            "--cert", "\(pki)/web.crt", "--key", "\(pki)/web.key", "--ca", "\(pki)/ca.crt",
        ])
        defer { client.stop() }

        let forged = try await Tools.run(
            curl, ["-sS", "-H", "x-client-identity: Subject=\"CN=admin\"", "http://127.0.0.1:\(clientPort)/forged"])
        #expect(forged.status == 0, "\(forged.stderr)")
        let lines = forged.stdout.split(separator: "\n").filter { $0.lowercased().hasPrefix("x-client-identity:") }
        #expect(lines.count == 1, "exactly one identity header reaches the backend: \(forged.stdout)")
        let header = try #require(lines.first)
        #expect(!header.contains("CN=admin"), "the forged header is gone")
        #expect(header.contains("Subject=\"CN=web\"") && header.contains("URI=spiffe://example.org/ns/web"))
        #expect(header.contains("DNS=web.example"))
        let hash = try #require(header.split(separator: ";").first { $0.contains("Hash=") })
        #expect(hash.split(separator: "=").last?.count == 64, "Hash= is the certificate's SHA-256: \(hash)")

        let chunked = try await Tools.run(
            curl,
            [
                "-sS", "-H", "Transfer-Encoding: chunked", "--data-binary", "@-", "http://127.0.0.1:\(clientPort)/post",
            ], stdin: String(repeating: "chunk-data ", count: 500))
        #expect(chunked.stdout.contains("POST /post HTTP/1.1"), "\(chunked.stdout.prefix(300)) \(chunked.stderr)")
        #expect(chunked.stdout.contains("BODY:" + String(repeating: "chunk-data ", count: 500)))
        #expect(chunked.stdout.lowercased().contains("x-client-identity: hash="))

        // Two requests in one write, on one connection (curl no longer pipelines): two answers, in order.
        let pipelined = try await RawTCP.connect(port: clientPort)
        try pipelined.send(
            Array(
                ("GET /one HTTP/1.1\r\nHost: a\r\nX-Client-Identity: forged\r\n\r\n"
                    + "GET /two HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").utf8))
        let answers = String(decoding: await pipelined.receiveAll().bytes, as: UTF8.self)
        let one = try #require(answers.range(of: "GET /one HTTP/1.1"))
        let two = try #require(answers.range(of: "GET /two HTTP/1.1"))
        #expect(one.lowerBound < two.lowerBound)
        #expect(answers.components(separatedBy: "HTTP/1.1 200").count == 3)
        #expect(!answers.contains("X-Client-Identity: forged"))
        #expect(answers.components(separatedBy: "Subject=\"CN=web\"").count == 3)

        let h2 = try await RawTCP.connect(port: clientPort)
        try h2.send(Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8))
        let refused = String(decoding: await h2.receiveAll().bytes, as: UTF8.self)
        #expect(refused.hasPrefix("HTTP/1.1 400 Bad Request"), "\(refused)")
        let log = try await server.waitForOutput { $0.contains("needs HTTP/1.x") }
        #expect(log.contains("refused:"))
    }
}
