import Foundation
import SecureChannelPKI
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// What operators rely on: the metrics endpoint scraped by a real HTTP client, JSON logs with stable fields, exit
/// statuses, systemd units.
@Suite("Operations: metrics, JSON logs, exit statuses, systemd units", .timeLimit(.minutes(3)))
struct OperationsTests {
    /// `securechannel serve` with `--metrics 127.0.0.1:0` and JSON logs; returns the process, its TLS and metrics ports.
    static func serveWithMetrics(_ dir: String, extra: [String] = []) async throws -> (
        RunningProcess, port: Int, metrics: Int
    ) {
        let process = try RunningProcess(
            try Tools.securechannel(),
            [
                "serve", "--listen", "127.0.0.1:0", "--cert", "\(dir)/Jill.crt", "--key", "\(dir)/Jill.key", "--ca",
                "\(dir)/ca.crt",
                "--allow-cn", "Chris", "--metrics", "127.0.0.1:0", "--log-format", "json",
            ] + extra)
        let output = try await process.waitForOutput {
            $0.contains("listening on ") && $0.contains("metrics on http://")
        }
        let port = try #require(process.port(after: "listening on "))
        let metrics = try #require(process.port(after: "metrics on http://"))
        _ = output
        return (process, port, metrics)
    }

    /// `curl` of a URL: status code and body.
    static func curl(_ url: String) async throws -> (status: Int, body: String) {
        let result = try await Tools.run(
            try Tools.require("curl"), ["-sS", "--max-time", "10", "-w", "\n%{http_code}", url])
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
    }

    /// The value of the sample `name{labels}` (labels as written by the exporter), or nil if absent.
    static func sample(_ body: String, _ series: String) -> Double? {
        for line in body.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))
        }
        return nil
    }

    @Test(
        "/metrics (scraped with curl) counts verified clients, messages and refusals by reason; /healthz answers",
        .enabled(if: Tools.enabled("curl"), "needs curl"))
    func metricsMove() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        try await CLI.ok(["ca", "issue", "client", "--dir", dir.path, "--name", "Eve"])
        let (server, port, metricsPort) = try await Self.serveWithMetrics(dir.path)
        defer { server.stop() }
        let url = "http://127.0.0.1:\(metricsPort)/metrics"

        let before = try await Self.curl(url)
        #expect(before.status == 200)
        #expect(Self.sample(before.body, #"securechannel_connections_verified_total{listener="serve"}"#) == 0)
        let serverExpiry = try #require(
            Self.sample(
                before.body, #"securechannel_certificate_expiry_seconds{listener="serve",certificate="server"}"#))
        #expect(
            serverExpiry > 80 * 86_400 && serverExpiry <= 90 * 86_400 + 1, "Jill's certificate is valid for 90 days")
        let caExpiry = try #require(
            Self.sample(before.body, #"securechannel_certificate_expiry_seconds{listener="serve",certificate="ca"}"#))
        #expect(caExpiry > 3000 * 86_400)

        let server1 = ServerProcess(process: server, port: port)
        let ok = try await server1.send(dir.path, ["one", "two"])
        #expect(ok.status == 0 && ok.stdout == "one\ntwo\n", "\(ok.stderr)")
        let eve = try await server1.send(dir.path, ["let me in"], client: "Eve")
        #expect(eve.status != 0)
        // send refuses a server certificate before it connects (nothing reaches the server)...
        let jill = try await server1.send(dir.path, ["I am a server"], client: "Jill")
        #expect(
            jill.status == 1 && jill.stderr.contains("Jill.crt") && jill.stderr.contains("client certificate"),
            "\(jill.stderr)")
        // ...so OpenSSL presents it, and the server refuses it.
        _ = try await server1.presentWithOpenSSL(dir.path, client: "Jill")

        // The counters move when the connections have ended (the server logs each end first).
        _ = try await server.waitForOutput { $0.components(separatedBy: #""event":"ended""#).count > 3 }
        let after = try await Self.curl(url)
        #expect(Self.sample(after.body, #"securechannel_connections_accepted_total{listener="serve"}"#) == 3)
        #expect(Self.sample(after.body, #"securechannel_connections_verified_total{listener="serve"}"#) == 1)
        #expect(Self.sample(after.body, #"securechannel_messages_total{listener="serve"}"#) == 2)
        #expect(
            Self.sample(after.body, #"securechannel_connections_refused_total{listener="serve",reason="not_allowed"}"#)
                == 1)
        #expect(
            Self.sample(
                after.body, #"securechannel_connections_refused_total{listener="serve",reason="bad_certificate"}"#) == 1
        )
        #expect(
            Self.sample(after.body, #"securechannel_connections_refused_total{listener="serve",reason="revoked"}"#) == 0
        )
        #expect(Self.sample(after.body, #"securechannel_connections_open{listener="serve"}"#) == 0)
        #expect(Self.sample(after.body, #"securechannel_handshake_duration_seconds_count{listener="serve"}"#) == 1)
        #expect((Self.sample(after.body, #"securechannel_bytes_received_total{listener="serve"}"#) ?? 0) > 1000)
        #expect((Self.sample(after.body, #"securechannel_bytes_sent_total{listener="serve"}"#) ?? 0) > 1000)

        let health = try await Self.curl("http://127.0.0.1:\(metricsPort)/healthz")
        #expect(health.status == 200 && health.body.trimmingCharacters(in: .whitespacesAndNewlines) == "ok")
        #expect(try await Self.curl("http://127.0.0.1:\(metricsPort)/nothing").status == 404)

        server.signal(SIGTERM)
        #expect(try await server.waitForExit() == 0)
    }

    @Test("--log-format json: every line is one JSON object with the documented fields")
    func jsonLogs() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        let (server, port, _) = try await Self.serveWithMetrics(dir.path)
        defer { server.stop() }
        let running = ServerProcess(process: server, port: port)
        #expect(try await running.send(dir.path, ["hello"]).status == 0)
        _ = try await running.presentWithOpenSSL(dir.path, client: "Jill")
        _ = try await server.waitForOutput { $0.components(separatedBy: #""event":"ended""#).count > 2 }
        server.signal(SIGTERM)
        #expect(try await server.waitForExit() == 0)

        let lines = server.output().split(separator: "\n").filter { $0.hasPrefix("{") }
        var objects: [[String: Any]] = []
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            objects.append(try #require(object, "not a JSON object: \(line)"))
        }
        for object in objects {
            #expect(
                object["time"] is String && object["level"] is String && object["message"] is String
                    && object["event"] is String,
                "\(object)")
        }
        let connected = try #require(objects.first { $0["event"] as? String == "connected" })
        #expect(connected["subject"] as? String == "CN=Chris")
        #expect((connected["peer"] as? String)?.hasPrefix("127.0.0.1:") == true)
        #expect(connected["tls_version"] as? String == "TLSv1.3")
        #expect((connected["cipher"] as? String)?.hasPrefix("TLS_") == true)
        #expect(connected["serial"] is String && connected["handshake_duration"] is Double)
        let ended = try #require(
            objects.first { $0["event"] as? String == "ended" && $0["subject"] as? String == "CN=Chris" })
        #expect(ended["messages"] as? Int == 1)
        #expect((ended["bytes_in"] as? Int ?? 0) > 0 && (ended["bytes_out"] as? Int ?? 0) > 0)
        #expect(ended["duration"] is Double && ended["reason"] as? String == "closed by peer")
        let refused = try #require(objects.first { $0["event"] as? String == "ended" && $0["refusal"] != nil })
        #expect(refused["refusal"] as? String == "bad_certificate" && refused["level"] as? String == "warning")
        #expect((refused["reason"] as? String)?.contains("serverAuth, not clientAuth") == true)
        #expect(
            objects.contains { $0["event"] as? String == "started" }
                && objects.contains { $0["event"] as? String == "draining" })
    }

    @Test("exit statuses: 0 after SIGTERM, 1 for a bad configuration, 64 for a usage error")
    func exitStatuses() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        let server = try await ServerProcess.start(dir: dir.path)
        server.process.signal(SIGINT)
        #expect(try await server.process.waitForExit() == 0)

        let missing = try await CLI.run([
            "serve", "--listen", "127.0.0.1:0", "--cert", dir.file("nope.crt"), "--key", dir.file("Jill.key"),
            "--ca", dir.file("ca.crt"), "--allow-any-client",
        ])
        #expect(missing.status == 1)
        #expect(
            missing.stderr.hasPrefix("error: ") && missing.stderr.split(separator: "\n").count == 1, "\(missing.stderr)"
        )
        let usage = try await CLI.run(["serve", "--listen", "127.0.0.1:0", "--no-such-flag"])
        #expect(usage.status == 64)
        let noListen = try await CLI.run([
            "serve", "--cert", dir.file("Jill.crt"), "--key", dir.file("Jill.key"), "--ca", dir.file("ca.crt"),
            "--allow-any-client",
        ])
        #expect(
            noListen.status == 1 && noListen.stderr.contains("missing the address to listen on"), "\(noListen.stderr)")
        let taken = try await ServerProcess.start(dir: dir.path)
        defer { taken.stop() }
        let busy = try await CLI.run([
            "serve", "--listen", "127.0.0.1:\(taken.port)", "--cert", dir.file("Jill.crt"), "--key",
            dir.file("Jill.key"),
            "--ca", dir.file("ca.crt"), "--allow-any-client", "--metrics", "127.0.0.1:0",
        ])
        #expect(busy.status == 1 && busy.stderr.contains("cannot listen on 127.0.0.1:\(taken.port)"), "\(busy.stderr)")
    }

    @Test(
        "contrib/systemd units pass systemd-analyze verify and carry the sandboxing options",
        .enabled(if: Tools.enabled("systemd-analyze"), "needs systemd-analyze (Debian package systemd)"))
    func systemdUnits() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let contrib = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
            .appendingPathComponent("contrib/systemd").path
        let binary = try Tools.securechannel()
        for unit in ["securechannel-serve.service", "securechannel-tunnel@.service"] {
            let text = try String(contentsOfFile: "\(contrib)/\(unit)", encoding: .utf8)
            for option in [
                "NoNewPrivileges=yes", "ProtectSystem=strict", "ReadOnlyPaths=/etc/securechannel",
                "ExecReload=/bin/kill -HUP $MAINPID",
                "config check",
            ] {
                #expect(text.contains(option), "\(unit) lacks \(option)")
            }
            // verify needs the executable to exist: point the unit at the binary under test.
            try SecureFile.write(
                text.replacingOccurrences(of: "/usr/local/bin/securechannel", with: binary), to: dir.file(unit),
                mode: 0o644)
        }
        for instance in ["securechannel-serve.service", "securechannel-tunnel@redis.service"] {
            let result = try await Tools.run(
                try Tools.require("systemd-analyze"), ["verify", dir.file(instance)], timeout: 60)
            #expect(result.status == 0 && result.stderr.isEmpty, "\(instance): \(result.stderr)")
        }
    }
}
