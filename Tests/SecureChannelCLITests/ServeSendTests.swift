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
