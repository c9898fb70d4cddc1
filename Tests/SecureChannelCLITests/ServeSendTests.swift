import Foundation
import SecureChannelPKI
import TestSupport
import Testing

@Suite("CLI: serve, send, demo", .timeLimit(.minutes(3)))
struct ServeSendTests {
    @Test("serve prints its real port; send prints each reply, from arguments and from stdin; SIGTERM exits 0")
    func serveAndSend() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        let server = try await ServerProcess.start(dir: dir.path, extra: ["--allow-cn", "Chris"])
        defer { server.stop() }
        #expect(server.process.output().contains("listening on 127.0.0.1:\(server.port)\n"))
        let arguments = try await server.send(dir.path, ["Hello Jill", "second message"])
        #expect(arguments.status == 0, "\(arguments.stderr)")
        #expect(arguments.stdout == "Hello Jill\nsecond message\n")
        let piped = try await server.send(dir.path, [], stdin: "one\ntwo\r\nthree\n")
        #expect(piped.status == 0, "\(piped.stderr)")
        #expect(piped.stdout == "one\ntwo\nthree\n")
        let log = try await server.process.waitForOutput {
            $0.components(separatedBy: "ended: closed by peer").count > 2
        }
        #expect(log.contains("verified CN=Chris"))
        #expect(log.contains("TLSv1.3"))
        #expect(log.contains("X25519MLKEM768"))
        server.process.signal(SIGTERM)
        #expect(try await server.process.waitForExit() == 0)
    }

    @Test(
        "a client that sends without reading its replies: serve stops reading from it instead of buffering replies without bound, and answers others",
        .enabled(if: Tools.enabled("python3"), "needs python3"))
    func slowReader() async throws {
        let python = try Tools.require("python3")
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        let server = try await ServerProcess.start(dir: dir.path)
        defer { server.stop() }
        // Sends 64-byte lines, never reads, until a send waits 3 s (the server stopped reading) or 200 MB went.
        let script = """
            import socket, ssl, sys
            port, ca, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
            ctx.load_cert_chain(cert, key)
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            tls = ctx.wrap_socket(raw, server_hostname="localhost")
            tls.settimeout(3)
            line, sent = b"x" * 63 + b"\\n", 0
            chunk = line * 256
            try:
                while sent < 200_000_000:
                    tls.sendall(chunk)
                    sent += len(chunk)
                print("SENT-ALL", sent)
            except socket.timeout:
                print("BLOCKED", sent)
            """
        try SecureFile.write(script, to: dir.file("flood.py"), mode: 0o644)
        let flood = try await Tools.run(
            python,
            [dir.file("flood.py"), "\(server.port)", dir.file("ca.crt"), dir.file("Chris.crt"), dir.file("Chris.key")],
            timeout: 120)
        let words = flood.stdout.split(separator: " ")
        #expect(words.first == "BLOCKED", "the server kept reading: \(flood.stdout) \(flood.stderr)")
        let sent = Int(words.last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? .max
        #expect(sent < 100_000_000, "it stopped reading after \(sent) bytes")
        // Another client is answered meanwhile.
        let other = try await server.send(dir.path, ["still here"])
        #expect(other.status == 0 && other.stdout.contains("still here"), "\(other.stdout) \(other.stderr)")
    }

    @Test("serve refuses to start without an --allow rule, saying what to add")
    func noRule() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        let result = try await CLI.run([
            "serve", "--listen", "127.0.0.1:0", "--cert", dir.file("Jill.crt"), "--key", dir.file("Jill.key"),
            "--ca", dir.file("ca.crt"),
        ])
        #expect(result.status != 0)
        #expect(result.stderr.contains("--allow-any-client"))
    }

    @Test("send: one clear line and a non-zero status for each failure")
    func sendErrors() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        try await CLI.ok(["ca", "issue", "client", "--dir", dir.path, "--name", "Eve"])
        let server = try await ServerProcess.start(dir: dir.path, extra: ["--allow-cn", "Chris"])
        defer { server.stop() }
        let cases: [([String], String)] = [
            (["--server-name", "other.example"], "name mismatch"),
            (["--key", dir.file("Eve.key")], "does not belong"),
        ]
        for (extra, expected) in cases {
            let result = try await server.send(dir.path, ["x"], extra: extra)
            #expect(result.status != 0)
            #expect(result.stderr.contains(expected), "\(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
        }
        let refusedByRules = try await server.send(dir.path, ["x"], client: "Eve")
        #expect(refusedByRules.status != 0 && refusedByRules.stderr.contains("server rejected our certificate"))
        let noServer = try await CLI.run([
            "send", "--connect", "127.0.0.1:1", "--cert", dir.file("Chris.crt"), "--key", dir.file("Chris.key"),
            "--ca", dir.file("ca.crt"), "x",
        ])
        #expect(noServer.status != 0 && noServer.stderr.contains("connection refused"))
        let log = try await server.process.waitForOutput { $0.contains("refused by rules") }
        #expect(log.contains("CN=Eve"))
    }

    @Test("demo runs the whole story and prints the reply")
    func demo() async throws {
        let result = try await CLI.run(["demo", "--message", "Hello from the test"], timeout: 120)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("Jill -> Chris: Hello from the test"))
        #expect(result.stdout.contains("Chris verified Jill: CN=Jill"))
        #expect(result.stdout.contains("Jill verified Chris: CN=Chris"))
        #expect(result.stdout.contains("TLSv1.3"))
    }
}
