import Foundation
import TestSupport
import Testing

@Suite("CLI: bench", .timeLimit(.minutes(3)))
struct BenchTests {
    /// Runs each mode for a second against a loopback server: it must run and report, not be fast.
    @Test("each bench mode runs for a second and reports", arguments: ["handshake", "echo", "bulk"])
    func mode(_ mode: String) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        let server = try await ServerProcess.start(dir: dir.path)
        defer { server.stop() }
        let result = try await CLI.run([
            "bench", "--connect", "127.0.0.1:\(server.port)", "--server-name", "localhost", "--cert",
            dir.file("Chris.crt"),
            "--key", dir.file("Chris.key"), "--ca", dir.file("ca.crt"), "--mode", mode, "--duration", "1",
            "--connections", "2", "--json",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        for key in [
            "mode", "connections", "seconds", "errors", "handshakes_per_second", "messages_per_second",
            "megabytes_per_second", "latency_ms",
        ] {
            #expect(report.keys.contains(key), "missing \(key)")
        }
        #expect(report["mode"] as? String == mode)
        #expect(report["errors"] as? Int == 0)
        #expect((report["messages_per_second"] as? Double ?? 0) > 0)
        if mode == "bulk" {
            #expect(report["latency_ms"] is NSNull)
        } else {
            let latency = try #require(report["latency_ms"] as? [String: Double])
            #expect(latency["p50"] != nil && latency["p999"] != nil && latency["max"] != nil)
        }
        #expect((report["handshakes_per_second"] is NSNull) == (mode != "handshake"))
    }

    /// `--plaintext` measures a tunnel client's plaintext entrance: bench → tunnel client → (mTLS) → serve.
    @Test("bench --plaintext drives a tunnel client's entrance")
    func plaintextThroughTunnel() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        let server = try await ServerProcess.start(dir: dir.path)
        defer { server.stop() }
        let (tunnel, port) = try await TunnelCLITests.start([
            "client", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:\(server.port)", "--server-name", "localhost",
            "--cert", dir.file("Chris.crt"), "--key", dir.file("Chris.key"), "--ca", dir.file("ca.crt"),
        ])
        defer { tunnel.stop() }
        let result = try await CLI.run([
            "bench", "--connect", "127.0.0.1:\(port)", "--plaintext", "--mode", "echo", "--duration", "1",
            "--connections", "2", "--json",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(report["errors"] as? Int == 0)
        #expect((report["messages_per_second"] as? Double ?? 0) > 0)
        #expect(report["session"] is NSNull, "a plaintext run has no TLS session to report")
    }

    /// Benchmarks/compare.sh and idle-memory.sh put HAProxy, nginx, stunnel and our tunnel server in front of the
    /// C echo backend in Benchmarks/echo-backend.c: it must build and echo what bench sends, every byte checked.
    @Test(
        "the benchmarks' C echo backend builds and echoes: bench --plaintext echo and bulk report no error",
        .enabled(if: Tools.enabled("cc"), "needs cc (gcc) to build Benchmarks/echo-backend.c"))
    func echoBackend() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Benchmarks/echo-backend.c").path
        let built = try await Tools.run(
            try Tools.require("cc"), ["-O2", "-Wall", "-o", dir.file("echo-backend"), source], timeout: 60)
        #expect(built.status == 0 && built.stderr.isEmpty, "\(built.stderr)")
        let backend = try RunningProcess(dir.file("echo-backend"), [])
        defer { backend.stop() }
        try await backend.waitForOutput { $0.contains("PORT:") }
        let port = try #require(
            backend.output().split(separator: "\n").first { $0.hasPrefix("PORT:") }.flatMap { Int($0.dropFirst(5)) })
        for (mode, connections) in [("echo", "20"), ("bulk", "1")] {
            let result = try await CLI.run([
                "bench", "--connect", "127.0.0.1:\(port)", "--plaintext", "--mode", mode, "--duration", "1",
                "--connections", connections, "--json",
            ])
            #expect(result.status == 0, "\(result.stderr)")
            let report = try #require(
                try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
            #expect(report["errors"] as? Int == 0, "\(mode): \(result.stdout)")
            #expect((report["messages_per_second"] as? Double ?? 0) > 0, "\(mode): \(result.stdout)")
        }
    }

    @Test("bench refuses --plaintext with certificates, and TLS without them")
    func plaintextOptions() async throws {
        let mixed = try await CLI.run([
            "bench", "--connect", "127.0.0.1:1", "--plaintext", "--cert", "x.crt", "--mode", "echo",
        ])
        #expect(mixed.status != 0 && mixed.stderr.contains("--plaintext uses no TLS"))
        let missing = try await CLI.run(["bench", "--connect", "127.0.0.1:1", "--mode", "echo"])
        #expect(missing.status != 0 && missing.stderr.contains("--cert, --key and --ca are required"))
    }
}
