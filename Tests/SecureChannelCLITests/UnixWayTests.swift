import Foundation
import SecureChannelPKI
import TestSupport
import Testing

/// Issue 14: input the Unix way, usage errors, closed pipes, interrupted commands, one name per idea.
@Suite("CLI: input the Unix way, exit statuses, closed pipes, interruptions", .timeLimit(.minutes(3)))
struct UnixWayTests {
    @Test(
        "- is standard input for cert inspect, cert verify, ca sign --csr and --passphrase-file; /dev/stdin and <(…) work"
    )
    func standardInput() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let pki = dir.file("pki")
        try await CLI.barryJillChris(in: pki)
        let jill = try String(contentsOfFile: "\(pki)/Jill.crt", encoding: .utf8)
        let inspect = try await CLI.ok(["cert", "inspect", "-"], stdin: jill)
        #expect(inspect.stdout.contains("CN=Jill"))
        let verify = try await CLI.ok(
            ["cert", "verify", "--ca", "\(pki)/ca.crt", "--purpose", "server", "--server-name", "localhost", "-"],
            stdin: jill)
        #expect(verify.stdout == "OK\n")
        let viaDevice = try await CLI.ok(["cert", "inspect", "/dev/stdin"], stdin: jill)
        #expect(viaDevice.stdout.contains("CN=Jill"))
        let bash = try Tools.require("bash")
        let substituted = try await Tools.run(
            bash, ["-c", "\"$0\" cert inspect <(cat \"$1\")", try Tools.securechannel(), "\(pki)/Jill.crt"])
        #expect(substituted.status == 0 && substituted.stdout.contains("CN=Jill"), "\(substituted.stderr)")

        try await CLI.ok([
            "cert", "request", "--name", "dana.example", "--dns", "dana.example", "--key-out", dir.file("dana.key"),
            "--csr-out", dir.file("dana.csr"),
        ])
        let csr = try String(contentsOfFile: dir.file("dana.csr"), encoding: .utf8)
        let signed = try await CLI.ok(
            ["ca", "sign", "--dir", pki, "--csr", "-", "--kind", "server", "--out", dir.file("dana")], stdin: csr)
        #expect(signed.stdout.contains("signed server certificate"))
        #expect(SecureFile.exists(dir.file("dana.crt")))

        try SecureFile.write("pass from a pipe\n", to: dir.file("pass"), mode: 0o600)
        let encrypted = dir.file("encrypted")
        try await CLI.ok(["ca", "init", "--dir", encrypted, "--passphrase-file", dir.file("pass")])
        try await CLI.ok(
            ["ca", "issue", "client", "--dir", encrypted, "--name", "Chris", "--passphrase-file", "-"],
            stdin: "pass from a pipe\n")
        let twice = try await CLI.run(
            ["ca", "sign", "--dir", encrypted, "--csr", "-", "--kind", "server", "--passphrase-file", "-"],
            stdin: csr)
        #expect(twice.status == 64 && twice.stderr.contains("only one input can be -"), "\(twice.stderr)")
    }

    @Test("cert inspect reads a CSR: subject, names, key, requested extensions, whether the self-signature holds")
    func inspectRequest() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.ok([
            "cert", "request", "--name", "Jill", "--dns", "jill.example", "--ip", "10.0.0.5", "--key-out",
            dir.file("jill.key"), "--csr-out", dir.file("jill.csr"),
        ])
        let text = try await CLI.ok(["cert", "inspect", dir.file("jill.csr")]).stdout
        for word in [
            "Certificate request (PKCS#10)", "CN=Jill", "DNS:jill.example", "IP:10.0.0.5", "subjectAltName",
            "ECDSA P-256", "self-signature holds",
        ] {
            #expect(text.contains(word), "missing \(word) in \(text)")
        }
        let json = try await CLI.ok(["cert", "inspect", "--json", dir.file("jill.csr")]).stdout
        #expect(json.contains("\"signatureValid\" : true"))
        // One byte of the subject changed: still a well-formed request, but its signature no longer holds.
        let pem = try String(contentsOfFile: dir.file("jill.csr"), encoding: .utf8)
        let base64 = pem.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
        var der = try #require(Data(base64Encoded: base64)).map { $0 }
        let name = Array("Jill".utf8)
        let at = try #require((0...(der.count - name.count)).first { Array(der[$0..<($0 + name.count)]) == name })
        der[at] = UInt8(ascii: "B")
        try SecureFile.write(der, to: dir.file("tampered.der"), mode: 0o644)
        let tampered = try await CLI.ok(["cert", "inspect", dir.file("tampered.der")]).stdout
        #expect(tampered.contains("CN=Bill") && tampered.contains("INVALID"), "\(tampered)")
    }

    @Test("a private key readable by others is loaded with one warning naming the file and chmod 600")
    func keyPermissions() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let pki = dir.file("pki")
        try await CLI.barryJillChris(in: pki)
        let quiet = try await CLI.ok([
            "cert", "verify", "--ca", "\(pki)/ca.crt", "--key", "\(pki)/Chris.key", "\(pki)/Chris.crt",
        ])
        #expect(!quiet.stderr.contains("warning"))
        chmod("\(pki)/Chris.key", 0o644)
        chmod("\(pki)/ca.key", 0o640)
        let verify = try await CLI.ok([
            "cert", "verify", "--ca", "\(pki)/ca.crt", "--key", "\(pki)/Chris.key", "\(pki)/Chris.crt",
        ])
        #expect(verify.stderr.contains("\(pki)/Chris.key") && verify.stderr.contains("chmod 600"), "\(verify.stderr)")
        let issue = try await CLI.ok(["ca", "issue", "client", "--dir", pki, "--name", "Dana"])
        #expect(issue.stderr.contains("\(pki)/ca.key is readable by its group") && issue.stderr.contains("chmod 600"))
        // A server: one warning at start, none again when the same file is reloaded.
        chmod("\(pki)/Jill.key", 0o644)
        let server = try await ServerProcess.start(dir: pki)
        defer { server.stop() }
        let sent = try await server.send(pki, ["hello"])
        #expect(sent.status == 0 && sent.stderr.contains("\(pki)/Chris.key") && sent.stderr.contains("chmod 600"))
        server.process.signal(SIGHUP)
        try await server.process.waitForOutput { $0.contains("reloaded") }
        let log = server.process.output()
        #expect(log.components(separatedBy: "\(pki)/Jill.key is readable by others").count == 2, "\(log)")
    }

    @Test("usage errors exit 64 with a line that says what is expected")
    func usageErrors() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let pki = dir.file("pki")
        try await CLI.barryJillChris(in: pki)
        let cases: [([String], [String])] = [
            (["ca", "issue", "client", "--dir", pki, "--name", "X", "--key-type", "rsa2048"], ["rsa-2048"]),
            (["ca", "revoke", "--dir", pki, "--name", "Chris", "--reason", "stolen"], ["keyCompromise"]),
            (["ca", "issue", "client", "--dir", pki, "--name", "X", "--days", "0"], ["--days must be 1 or more"]),
            (["ca", "issue", "client", "--dir", pki, "--name", "X", "--days", "-1"], ["--days must be 1 or more"]),
            (["ca", "init", "--dir", dir.file("n"), "--days", "0"], ["--days"]),
            (["ca", "crl", "--dir", pki, "--days", "0"], ["--days"]),
            (["serve", "--listen", "8452", "--allow-any-client"], ["HOST:PORT"]),
            (["tunnel", "server", "--listen", "8452"], ["HOST:PORT"]),
            (["ca", "issue", "clent", "--dir", pki, "--name", "X"], ["clent", "server", "client"]),
            (["bench", "--resume", "--connect", "127.0.0.1:1", "--plaintext", "--mode", "echo"], ["--resume"]),
            (["cert", "verify", "--ca", "\(pki)/ca.crt", "--host", "a", "--server-name", "b", "x"], ["--server-name"]),
            (["serve", "--listen", "127.0.0.1:0", "--tls-min", "1.1"], ["1.3"]),
            (["tunnel", "servr", "--listen", "127.0.0.1:0"], ["did you mean 'server'"]),
        ]
        for (arguments, words) in cases {
            let result = try await CLI.run(arguments)
            #expect(result.status == 64, "\(arguments.joined(separator: " ")): \(result.status) \(result.stderr)")
            let first = result.stderr.split(separator: "\n").first.map(String.init) ?? ""
            for word in words { #expect(first.contains(word), "\(arguments): \(first)") }
            #expect(!first.contains("Missing value"), "\(first)")
        }
        #expect(!SecureFile.exists("\(pki)/X.crt"))
        let help = try await CLI.ok(["cert", "verify", "--help"]).stdout
        #expect(help.contains("--server-name") && !help.contains("--host"))
    }

    @Test(
        "when the server rejects our certificate, send says what it can see: expired, another CA, or that the server's log names the reason"
    )
    func rejectionReasons() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let pki = dir.file("pki")
        try await CLI.barryJillChris(in: pki)
        let barry = try CertificateAuthority.open(directory: pki)
        _ = try barry.issue(.client(name: "Old", days: 1), now: Date().addingTimeInterval(-3 * 86_400))
        try await CLI.ok(["ca", "init", "--dir", dir.file("mallory"), "--name", "Mallory"])
        try await CLI.ok(["ca", "issue", "client", "--dir", dir.file("mallory"), "--name", "Chris"])
        try await CLI.ok(["ca", "issue", "client", "--dir", pki, "--name", "Revoked"])
        try await CLI.ok(["ca", "revoke", "--dir", pki, "--name", "Revoked"])
        let server = try await ServerProcess.start(
            dir: pki, extra: ["--allow-any-client", "--crl", "\(pki)/crl.pem"])
        defer { server.stop() }
        let expired = try await server.send(pki, ["hi"], client: "Old")
        #expect(expired.status == 1 && expired.stderr.contains("Old.crt expired on"), "\(expired.stderr)")
        let foreign = try await CLI.run([
            "send", "--connect", "127.0.0.1:\(server.port)", "--server-name", "localhost", "--cert",
            dir.file("mallory/Chris.crt"), "--key", dir.file("mallory/Chris.key"), "--ca", "\(pki)/ca.crt", "hi",
        ])
        #expect(foreign.status == 1 && foreign.stderr.contains("issued by CN=Mallory"), "\(foreign.stderr)")
        let revoked = try await server.send(pki, ["hi"], client: "Revoked")
        #expect(
            revoked.status == 1 && revoked.stderr.contains("the server's log names the reason"), "\(revoked.stderr)")
        for result in [expired, foreign, revoked] { #expect(result.stderr.split(separator: "\n").count == 1) }
    }

    /// Runs the binary with stdout and stderr on a pipe whose reader is already gone.
    static func intoClosedPipe(_ arguments: [String]) async throws -> ProcessResult {
        let python = try Tools.require("python3")
        let script = """
            import os, subprocess, sys
            r, w = os.pipe()
            os.close(r)
            p = subprocess.run(sys.argv[1:], stdout=w, stderr=w)
            print(p.returncode)
            """
        return try await Tools.run(python, ["-c", script, try Tools.securechannel()] + arguments)
    }

    @Test("writing to a closed pipe ends bench, ca list and cert inspect quietly (status 0 or 141), never a trap")
    func closedPipe() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let pki = dir.file("pki")
        try await CLI.barryJillChris(in: pki)
        let runs: [[String]] = [
            [
                "bench", "--connect", "127.0.0.1:1", "--cert", "\(pki)/Chris.crt", "--key", "\(pki)/Chris.key",
                "--ca", "\(pki)/ca.crt", "--mode", "handshake", "--duration", "0.3",
            ],
            ["bench", "--connect", "127.0.0.1:1", "--plaintext", "--mode", "echo", "--duration", "0.3"],
            ["ca", "list", "--dir", pki],
            ["cert", "inspect", "\(pki)/Jill.crt"],
        ]
        for arguments in runs {
            let result = try await Self.intoClosedPipe(arguments)
            let status = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            // Python shows a death by signal as its negative number: -13 is SIGPIPE, -4 SIGILL (a trap).
            #expect(["0", "141", "-13"].contains(status), "\(arguments[0]): status \(status) \(result.stderr)")
        }
    }

    @Test("an interrupted demo removes its temporary folder (SIGINT and SIGTERM)")
    func interruptedDemo() async throws {
        for signal in [SIGINT, SIGTERM] {
            let temporary = try TemporaryDirectory()
            defer { temporary.cleanup() }
            var environment = ProcessInfo.processInfo.environment
            environment["TMPDIR"] = temporary.path
            let demo = try RunningProcess(try Tools.securechannel(), ["demo"], environment: environment)
            defer { demo.stop() }
            let path = temporary.path
            @Sendable func folders() -> [String] {
                ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [])
                    .filter { $0.hasPrefix("securechannel-demo-") }
            }
            // Watched from a thread of its own: the test pool may be too busy to look in time.
            let pid = demo.pid
            let signalled = await withCheckedContinuation { continuation in
                Thread {
                    let deadline = Date().addingTimeInterval(20)
                    while folders().isEmpty && kill(pid, 0) == 0 && Date() < deadline { usleep(500) }
                    let seen = !folders().isEmpty
                    if seen { kill(pid, signal) }
                    continuation.resume(returning: seen)
                }.start()
            }
            try #require(signalled, "the demo made its folder: \(demo.output())")
            let status = try await demo.waitForExit()
            #expect(status == 128 + signal, "interrupted, not finished: \(demo.output())")
            #expect(folders().isEmpty, "left behind: \(folders())")
        }
    }
}
