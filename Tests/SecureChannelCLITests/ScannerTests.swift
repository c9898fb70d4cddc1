import Foundation
import TestSupport
import Testing

/// sslyze (from PyPI) against `serve`, presenting Chris's client certificate, judged by Mozilla's server-side TLS
/// recommendations: "modern" with the defaults, "intermediate" with `--tls-min 1.2`.
@Suite("Scanner: sslyze against serve", .timeLimit(.minutes(3)))
struct ScannerTests {
    @Test(
        "sslyze: Mozilla modern by default, intermediate with --tls-min 1.2",
        .enabled(if: Tools.enabled("sslyze"), "needs sslyze (pip install sslyze)"),
        arguments: [([String](), "modern"), (["--tls-min", "1.2"], "intermediate")])
    func mozilla(extra: [String], profile: String) async throws {
        let sslyze = try Tools.require("sslyze")
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        let server = try await ServerProcess.start(dir: dir.path, extra: ["--allow-any-client"] + extra)
        defer { server.stop() }
        let scan = try await Tools.run(
            sslyze,
            [
                "--cert", dir.file("Chris.crt"), "--key", dir.file("Chris.key"), "--certinfo_ca_file",
                dir.file("ca.crt"),
                "--mozilla_config", profile, "localhost:\(server.port){127.0.0.1}",
            ], timeout: 120)
        #expect(scan.stdout.contains("OK - Compliant."), "\(scan.stdout.suffix(1_500))\(scan.stderr)")
        #expect(scan.status == 0)
        // The client certificate was accepted: sslyze saw the server's full configuration, not a refusal.
        #expect(scan.stdout.contains("TLS_AES_128_GCM_SHA256"))
    }
}
