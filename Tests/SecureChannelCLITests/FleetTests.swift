import Foundation
import SecureChannelPKI
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// More than one instance: HAProxy in TCP mode in front of several `serve` processes, PROXY protocol v2 from
/// HAProxy to SecureChannel, TLS passed through, health checks on `/healthz`.
@Suite("Fleet: HAProxy in front of several serve instances", .timeLimit(.minutes(3)))
struct FleetTests {
    /// One `serve --accept-proxy-protocol` instance with its metrics endpoint.
    struct Instance {
        let process: RunningProcess
        let port: Int
        let metrics: Int
    }

    static func startInstance(_ dir: String) async throws -> Instance {
        let process = try RunningProcess(
            try Tools.securechannel(),
            [
                "serve", "--listen", "127.0.0.1:0", "--cert", "\(dir)/Jill.crt", "--key", "\(dir)/Jill.key", "--ca",
                "\(dir)/ca.crt",
                "--allow-cn", "Chris", "--accept-proxy-protocol", "--metrics", "127.0.0.1:0", "--log-format", "json",
            ])
        try await process.waitForOutput { $0.contains("listening on ") && $0.contains("metrics on http://") }
        return Instance(
            process: process, port: try #require(process.port(after: "listening on ")),
            metrics: try #require(process.port(after: "metrics on http://")))
    }

    /// HAProxy's configuration: TCP mode, PROXY v2 to each instance from 127.0.0.2 (so that an instance's TCP peer
    /// differs from the client's address), health checks on each instance's /healthz, connection retries that
    /// go to another instance.
    static func haproxyConfiguration(frontend: Int, instances: [Instance]) -> String {
        let servers = instances.enumerated().map { index, instance in
            "    server s\(index + 1) 127.0.0.1:\(instance.port) check port \(instance.metrics)"
        }.joined(separator: "\n")
        return """
            global
                maxconn 2000
            defaults
                mode tcp
                timeout connect 1s
                timeout client 60s
                timeout server 60s
                retries 3
                option redispatch 1
            frontend mtls
                bind 127.0.0.1:\(frontend)
                default_backend securechannel
            backend securechannel
                balance roundrobin
                source 127.0.0.2
                option httpchk GET /healthz
                default-server send-proxy-v2 inter 200ms fall 1 rise 2
            \(servers)

            """
    }

    @Test(
        "8 retrying clients through HAProxy to 3 instances, one SIGKILLed mid-run: every message answered, in order; logs show the real client address",
        .enabled(if: Tools.enabled("haproxy"), "needs haproxy (Debian package haproxy)"))
    func haproxyFailover() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        var instances: [Instance] = []
        defer { for instance in instances { instance.process.stop() } }
        for _ in 0..<3 { instances.append(try await Self.startInstance(dir.path)) }
        let frontend = try TunnelConfigTests.freePort()
        try SecureFile.write(
            Self.haproxyConfiguration(frontend: frontend, instances: instances), to: dir.file("haproxy.cfg"),
            mode: 0o644)
        let haproxy = try RunningProcess(try Tools.require("haproxy"), ["-f", dir.file("haproxy.cfg"), "-db"])
        defer { haproxy.stop() }

        let clients = try (0..<8).map { _ in
            try RunningProcess(
                try Tools.securechannel(),
                [
                    "send", "--connect", "127.0.0.1:\(frontend)", "--server-name", "localhost", "--cert",
                    dir.file("Chris.crt"),
                    "--key", dir.file("Chris.key"), "--ca", dir.file("ca.crt"), "--retry", "30", "--timeout", "5",
                ])
        }
        defer { for client in clients { client.stop() } }
        func lines(_ client: Int, _ range: Range<Int>) -> String {
            range.map { "client \(client) message \($0)\n" }.joined()
        }
        // First half: every client connected and answered (HAProxy may take a moment to start: the clients retry).
        for (number, client) in clients.enumerated() { client.send(lines(number, 0..<30)) }
        for (number, client) in clients.enumerated() {
            try await client.waitForOutput(timeout: 60) { $0.contains("client \(number) message 29\n") }
        }
        let victim = instances[0]
        let victimClients = victim.process.output().components(separatedBy: #""event":"connected""#).count - 1
        #expect(victimClients > 0, "round robin gave the instance to be killed no client; the test would prove nothing")

        // Second half: the messages are on their way when one instance dies without warning.
        for (number, client) in clients.enumerated() { client.send(lines(number, 30..<60)) }
        victim.process.signal(SIGKILL)
        for (number, client) in clients.enumerated() {
            client.closeInput()
            let status = try? await client.waitForExit(timeout: 90)
            let replies = client.output().split(separator: "\n").filter { $0.hasPrefix("client ") }.map(String.init)
            #expect(status == 0, "client \(number): \(client.output().suffix(600))")
            #expect(
                replies == (0..<60).map { "client \(number) message \($0)" },
                "client \(number) lost or reordered replies")
        }

        // Behind the proxy, logs name the client (127.0.0.1), not HAProxy's side of the connection (127.0.0.2).
        for instance in instances.dropFirst() {
            let log = instance.process.output()
            #expect(log.contains(#""peer":"127.0.0.1:"#), "\(log.suffix(800))")
            #expect(!log.contains(#""peer":"127.0.0.2:"#), "\(log.suffix(800))")
        }
        // The killed instance's clients noticed (their connection broke), retried, and went to the others.
        let retried = clients.filter { $0.output().contains("retrying in") }.count
        #expect(retried >= victimClients, "\(retried) clients retried; \(victimClients) were on the killed instance")
        let survivors = instances.dropFirst().map {
            $0.process.output().components(separatedBy: #""event":"connected""#).count - 1
        }.reduce(0, +)
        #expect(survivors >= 8, "every client ends on a surviving instance")
    }

    @Test("with --accept-proxy-protocol, a direct connection (no PROXY header) is refused with the reason")
    func directConnectionRefused() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        let instance = try await Self.startInstance(dir.path)
        defer { instance.process.stop() }
        let direct = try await ServerProcess(process: instance.process, port: instance.port).send(dir.path, ["hello"])
        #expect(direct.status != 0)
        let line = try await instance.process.waitForOutput { $0.contains("no PROXY protocol v2 header") }
        #expect(line.contains(#""refusal":"proxy_protocol""#))
    }

    @Test(
        "--reuse-port: two serve processes on one port share the connections; when one stops, the other takes them all")
    func reusePort() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        let port = try TunnelConfigTests.freePort()
        let arguments = [
            "serve", "--listen", "127.0.0.1:\(port)", "--cert", dir.file("Jill.crt"), "--key", dir.file("Jill.key"),
            "--ca", dir.file("ca.crt"), "--allow-cn", "Chris",
        ]
        let first = try RunningProcess(try Tools.securechannel(), arguments + ["--reuse-port"])
        defer { first.stop() }
        try await first.waitForOutput { $0.contains("listening on") }
        let second = try RunningProcess(try Tools.securechannel(), arguments + ["--reuse-port"])
        defer { second.stop() }
        try await second.waitForOutput { $0.contains("listening on") }
        // Without the option the port is taken, as ever.
        let third = try await CLI.run(arguments)
        #expect(third.status == 1 && third.stderr.contains("cannot listen on 127.0.0.1:\(port)"), "\(third.stderr)")

        let server = ServerProcess(process: first, port: port)
        try await withThrowingTaskGroup(of: ProcessResult.self) { group in
            for number in 0..<20 { group.addTask { try await server.send(dir.path, ["message \(number)"]) } }
            for try await result in group { #expect(result.status == 0, "\(result.stderr)") }
        }
        let connected = { (process: RunningProcess) in
            process.output().components(separatedBy: ": verified CN=Chris").count - 1
        }
        #expect(connected(first) + connected(second) == 20)
        #expect(connected(first) > 0 && connected(second) > 0, "the kernel spread 20 connections over both processes")

        first.signal(SIGTERM)
        #expect(try await first.waitForExit() == 0)
        let before = connected(second)
        for number in 0..<5 {
            let result = try await server.send(dir.path, ["after \(number)"])
            #expect(result.status == 0 && result.stdout == "after \(number)\n", "\(result.stderr)")
        }
        #expect(connected(second) == before + 5)
    }
}
