import Foundation
import SecureChannelConfig
import SecureChannelPKI
import TestSupport
import Testing

/// One configuration format for serve and tunnel: every flag has a key, flags override the file, and
/// `config check` validates and explains.
@Suite("CLI: configuration file and config check", .timeLimit(.minutes(3)))
struct ConfigFileTests {
    /// The long flags a command's `--help` lists.
    static func flags(_ command: [String]) async throws -> Set<String> {
        let help = try await CLI.ok(command + ["--help"]).stdout
        let pattern = try NSRegularExpression(pattern: "--([a-z][a-z0-9-]*)")
        let matches = pattern.matches(in: help, range: NSRange(help.startIndex..., in: help))
        // Only the option list (examples in the discussion name flags of other commands too).
        let options = help.range(of: "OPTIONS:").map { help[$0.upperBound...] }.map(String.init) ?? help
        let inOptions = Set(
            pattern.matches(in: options, range: NSRange(options.startIndex..., in: options)).compactMap {
                Range($0.range(at: 1), in: options).map { String(options[$0]) }
            })
        _ = matches
        return inOptions.subtracting(["help", "version"])
    }

    @Test("every flag of serve, tunnel server and tunnel client has its key in the file format")
    func everyFlagExpressible() async throws {
        let serve = try await Self.flags(["serve"])
        #expect(serve.contains("metrics") && serve.contains("accept-proxy-protocol") && serve.contains("config"))
        #expect(
            serve.subtracting(["config"]) == ServeSettings.keys,
            "serve flags vs keys: \(serve.symmetricDifference(ServeSettings.keys.union(["config"])))")
        let server = try await Self.flags(["tunnel", "server"])
        // log-format and metrics are the process's: top-level keys of the file.
        #expect(
            server.subtracting(["log-format", "metrics"]) == ConfigFile.serverKeys.subtracting(["name", "mode"]),
            "\(server.symmetricDifference(ConfigFile.serverKeys.subtracting(["name", "mode"]).union(["log-format", "metrics"])))"
        )
        let client = try await Self.flags(["tunnel", "client"])
        #expect(
            client.subtracting(["log-format", "metrics"]) == ConfigFile.clientKeys.subtracting(["name", "mode"]),
            "\(client.symmetricDifference(ConfigFile.clientKeys.subtracting(["name", "mode"]).union(["log-format", "metrics"])))"
        )
    }

    @Test("serve --config: the file's values apply and flags given as well override them")
    func serveFromFileWithOverrides() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        try SecureFile.write(
            """
            serve:
              listen: 127.0.0.1:0
              cert: Jill.crt
              key: Jill.key
              ca: ca.crt
              allow-cn: [Nobody]
              max-message-bytes: 8
            """, to: dir.file("serve.yaml"), mode: 0o644)
        // As the file says: Chris is not allowed.
        let strict = try RunningProcess(try Tools.securechannel(), ["serve", "--config", dir.file("serve.yaml")])
        defer { strict.stop() }
        try await strict.waitForOutput { $0.contains("listening on") }
        let refused = try await ServerProcess(process: strict, port: try #require(strict.port(after: "listening on ")))
            .send(dir.path, ["hi"])
        #expect(refused.status != 0)
        // The flag overrides the file's allow-cn; the file's message limit (8 bytes) still applies.
        let open = try RunningProcess(
            try Tools.securechannel(), ["serve", "--config", dir.file("serve.yaml"), "--allow-cn", "Chris"])
        defer { open.stop() }
        try await open.waitForOutput { $0.contains("listening on") }
        let server = ServerProcess(process: open, port: try #require(open.port(after: "listening on ")))
        let ok = try await server.send(dir.path, ["short"])
        #expect(ok.status == 0 && ok.stdout == "short\n", "\(ok.stderr)")
        let long = try await server.send(dir.path, ["much too long"])
        #expect(long.stdout.contains("ERR message too long: the limit is 8 bytes"), "\(long.stdout) \(long.stderr)")
    }

    @Test("config check explains a good file and names the section and line of a bad one")
    func check() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        let good = """
            metrics: 127.0.0.1:9091
            serve:
              listen: 0.0.0.0:8443
              cert: Jill.crt
              key: Jill.key
              ca: ca.crt
              allow-cn: [Chris]
              metrics: 127.0.0.1:9090
              accept-proxy-protocol: true
            tunnels:
              - name: redis
                mode: server
                listen: 0.0.0.0:6380
                target: 127.0.0.1:6379
                cert: Jill.crt
                key: Jill.key
                ca: ca.crt
                allow-any-client: true
            """
        try SecureFile.write(good, to: dir.file("good.yaml"), mode: 0o644)
        let result = try await CLI.ok(["config", "check", dir.file("good.yaml")])
        #expect(result.stdout.contains("good.yaml: OK"))
        #expect(result.stdout.contains("serve: listen on 0.0.0.0:8443; clients: CN=Chris"))
        #expect(
            result.stdout.contains("timeouts: handshake 10 s, idle 300 s, drain 5 s"),
            "defaults are shown: \(result.stdout)")
        #expect(result.stdout.contains("PROXY protocol v2 required"))
        #expect(result.stdout.contains("tunnel 'redis' (server): TLS on 0.0.0.0:6380 -> plaintext to 127.0.0.1:6379"))
        #expect(result.stdout.contains("certificate \(dir.file("Jill.crt")) (CN=Jill, expires"))

        let bad = good.replacingOccurrences(of: "  metrics: 127.0.0.1:9090", with: "  idle-timeout: soon")
        try SecureFile.write(bad, to: dir.file("bad.yaml"), mode: 0o644)
        let failed = try await CLI.run(["config", "check", dir.file("bad.yaml")])
        #expect(failed.status == 1)
        #expect(
            failed.stderr
                == "error: \(dir.file("bad.yaml")): serve: line 8: 'idle-timeout' must be a positive number of seconds (got 'soon')\n",
            "\(failed.stderr)")
        try SecureFile.write(
            good.replacingOccurrences(of: "allow-cn: [Chris]", with: "allow-cm: [Chris]"), to: dir.file("typo.yaml"),
            mode: 0o644)
        let typo = try await CLI.run(["config", "check", dir.file("typo.yaml")])
        #expect(
            typo.status == 1 && typo.stderr.contains("serve: line 7: unknown key 'allow-cm' for serve"),
            "\(typo.stderr)")
        try SecureFile.write("serve: [1, 2]\n", to: dir.file("shape.yaml"), mode: 0o644)
        let shape = try await CLI.run(["config", "check", dir.file("shape.yaml")])
        #expect(shape.status == 1 && shape.stderr.contains("'serve' must be a mapping"), "\(shape.stderr)")

        // An end that renews from the online CA and enforces its CRL: checked before its first fetch (no CRL file
        // yet, which `serve` fetches before it loads), and the online CA's part is explained.
        let online = good.replacingOccurrences(
            of: "  accept-proxy-protocol: true",
            with: "  renew-from: https://ca.internal:9443\n  crl-url: https://ca.internal:9443\n  crl-refresh: 30s"
        ).replacingOccurrences(
            of: "    allow-any-client: true",
            with: "    allow-any-client: true\n    renew-from: https://ca.internal:9443")
        try SecureFile.write(online, to: dir.file("online.yaml"), mode: 0o644)
        let checked = try await CLI.run(["config", "check", dir.file("online.yaml")])
        #expect(checked.status == 0, "\(checked.stderr)")
        #expect(
            checked.stdout.contains(
                "  online CA: renews its certificate from https://ca.internal:9443 at two thirds of its life; fetches the CRL from https://ca.internal:9443 every 30 s into \(dir.file("Jill.crt.crl"))"
            ), "\(checked.stdout)")
        #expect(
            checked.stdout.components(separatedBy: "online CA: renews its certificate").count == 3,
            "the tunnel's too: \(checked.stdout)")
    }
}
