import Foundation
import SecureChannelPKI
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The one listener core, end to end: the tunnel client reloads like the servers, every side refuses a certificate
/// for the wrong side at start, `listening on` means everything is bound, and bind errors say what is wrong.
@Suite("CLI: one listener core for serve, tunnel server and tunnel client", .timeLimit(.minutes(3)))
struct ListenerCoreTests {
    /// A plaintext TCP echo in Python on a free port.
    static func echoServer() async throws -> (RunningProcess, Int) {
        let python = try Tools.require("python3")
        let server = try RunningProcess(
            python,
            [
                "-u", "-c",
                """
                import socket, threading
                s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(64)
                print("PORT:%d" % s.getsockname()[1], flush=True)
                def serve(c):
                    while True:
                        d = c.recv(65536)
                        if not d: break
                        c.sendall(d)
                    c.close()
                while True:
                    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
                """,
            ])
        try await server.waitForOutput { $0.contains("PORT:") }
        return (server, try #require(server.port(after: "PORT")))
    }

    /// Sends `text` on `connection` and returns what comes back (as many bytes as were sent).
    static func exchange(_ connection: RawTCP, _ text: String) async throws -> String {
        try connection.send(Array(text.utf8))
        return String(decoding: await connection.receiveAll(limit: text.utf8.count).bytes, as: UTF8.self)
    }

    /// The serials of the client certificates a tunnel server's JSON log shows as verified, in order.
    static func verifiedSerials(_ log: String) -> [String] {
        log.split(separator: "\n").filter { $0.contains(#""event":"connected""#) }.compactMap { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                return nil
            }
            return object["serial"] as? String
        }
    }

    @Test(
        "tunnel client: SIGHUP reloads (the process stays up) and a renewed certificate is picked up from the files; a connection made before goes on, one made after presents the new certificate",
        .enabled(if: Tools.enabled("python3"), "needs python3"))
    func tunnelClientReloads() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        let (echo, echoPort) = try await Self.echoServer()
        defer { echo.stop() }
        let (server, serverPort) = try await TunnelCLITests.start([
            "server", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:\(echoPort)", "--cert", dir.file("Jill.crt"),
            "--key", dir.file("Jill.key"), "--ca", dir.file("ca.crt"), "--allow-cn", "Chris", "--log-format", "json",
        ])
        defer { server.stop() }
        let (client, clientPort) = try await TunnelCLITests.start([
            "client", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:\(serverPort)", "--server-name", "localhost",
            "--cert", dir.file("Chris.crt"), "--key", dir.file("Chris.key"), "--ca", dir.file("ca.crt"),
        ])
        defer { client.stop() }

        let before = try await RawTCP.connect(port: clientPort)
        #expect(try await Self.exchange(before, "before 1\n") == "before 1\n")
        _ = try await server.waitForOutput { Self.verifiedSerials($0).count == 1 }

        // SIGHUP: a reload, not a death (it used to end the process with status 129).
        client.signal(SIGHUP)
        _ = try await client.waitForOutput { $0.contains("reloaded certificate, key, CA and CRLs (SIGHUP)") }
        #expect(client.isRunning)

        // A renewal writes new files; the watcher picks them up without a signal.
        try await CLI.ok(["ca", "renew", "--dir", dir.path, "--name", "Chris"])
        _ = try await client.waitForOutput { $0.contains("reloaded certificate, key, CA and CRLs (files changed)") }

        #expect(try await Self.exchange(before, "before 2\n") == "before 2\n", "the open tunnel goes on")
        let after = try await RawTCP.connect(port: clientPort)
        #expect(try await Self.exchange(after, "after\n") == "after\n")
        let log = try await server.waitForOutput { Self.verifiedSerials($0).count == 2 }
        let serials = Self.verifiedSerials(log)
        #expect(
            serials.count == 2 && serials[0] != serials[1],
            "the new tunnel presents the renewed certificate: \(serials)")
        before.close()
        after.close()
        client.signal(SIGTERM)
        #expect(try await client.waitForExit() == 0)
    }

    @Test(
        "a certificate for the wrong side, or a CA certificate, is refused at start by serve, tunnel server, tunnel client and send, with one line naming the file"
    )
    func wrongRoleRefused() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        func files(_ name: String) -> [String] {
            ["--cert", dir.file("\(name).crt"), "--key", dir.file("\(name).key"), "--ca", dir.file("ca.crt")]
        }
        let cases: [(String, [String], String)] = [
            (
                "serve with a client certificate",
                ["serve", "--listen", "127.0.0.1:0", "--allow-any-client"] + files("Chris"),
                "Chris.crt cannot be used here"
            ),
            (
                "serve with the CA certificate",
                ["serve", "--listen", "127.0.0.1:0", "--allow-any-client"] + files("ca"),
                "ca.crt is a CA certificate"
            ),
            (
                "tunnel server with a client certificate",
                ["tunnel", "server", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:1", "--allow-any-client"]
                    + files("Chris"),
                "Chris.crt cannot be used here"
            ),
            (
                "tunnel client with a server certificate",
                ["tunnel", "client", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:1"] + files("Jill"),
                "Jill.crt cannot be used here"
            ),
            (
                "send with a server certificate",
                ["send", "--connect", "127.0.0.1:1", "--server-name", "localhost"] + files("Jill") + ["hi"],
                "Jill.crt cannot be used here"
            ),
        ]
        for (label, arguments, expected) in cases {
            let result = try await CLI.run(arguments, timeout: 30)
            #expect(result.status == 1, "\(label): \(result.status) \(result.stderr)")
            #expect(
                result.stderr.hasPrefix("error: ") && result.stderr.contains(expected), "\(label): \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(label): one line: \(result.stderr)")
            #expect(!result.stdout.contains("listening on"), "\(label)")
        }
        // The control: the right certificates start.
        let (server, _) = try await TunnelCLITests.start(
            [
                "server", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:1",
                "--allow-any-client",
            ] + files("Jill"))
        server.stop()
    }

    @Test(
        "'listening on' is printed only when everything is bound: with the metrics port taken, nothing is announced and the exit status is 1; bind errors are one plain line"
    )
    func readinessAfterEveryBind() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        let taken = try await ServerProcess.start(dir: dir.path)
        defer { taken.stop() }
        let files = ["--cert", dir.file("Jill.crt"), "--key", dir.file("Jill.key"), "--ca", dir.file("ca.crt")]

        let metricsTaken = try await CLI.run(
            [
                "serve", "--listen", "127.0.0.1:0", "--allow-any-client",
                "--metrics", "127.0.0.1:\(taken.port)",
            ] + files, timeout: 30)
        #expect(metricsTaken.status == 1, "\(metricsTaken.stderr)")
        #expect(!metricsTaken.stdout.contains("listening on"), "no readiness line: \(metricsTaken.stdout)")
        #expect(
            metricsTaken.stderr.contains(
                "error: cannot listen for metrics on 127.0.0.1:\(taken.port): address already in use"),
            "\(metricsTaken.stderr)")

        let tunnelMetricsTaken = try await CLI.run(
            [
                "tunnel", "client", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:1",
                "--cert", dir.file("Chris.crt"), "--key", dir.file("Chris.key"),
                "--ca", dir.file("ca.crt"), "--metrics", "127.0.0.1:\(taken.port)",
            ], timeout: 30)
        #expect(
            tunnelMetricsTaken.status == 1 && !tunnelMetricsTaken.stdout.contains("listening on"),
            "\(tunnelMetricsTaken.stdout)")

        let busy = try await CLI.run(
            ["serve", "--listen", "127.0.0.1:\(taken.port)", "--allow-any-client"] + files, timeout: 30)
        #expect(busy.status == 1)
        #expect(
            busy.stderr == "error: cannot listen on 127.0.0.1:\(taken.port): address already in use\n", "\(busy.stderr)"
        )

        let unknown = try await CLI.run(
            ["serve", "--listen", "no-such-host.invalid:0", "--allow-any-client"] + files, timeout: 30)
        #expect(unknown.status == 1)
        #expect(
            unknown.stderr.hasPrefix(
                "error: cannot listen on no-such-host.invalid:0: unknown host 'no-such-host.invalid'")
                && unknown.stderr.split(separator: "\n").count == 1, "\(unknown.stderr)")
        #expect(!unknown.stderr.contains("SocketAddressError"), "\(unknown.stderr)")
    }
}
