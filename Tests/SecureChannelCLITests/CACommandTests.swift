import Foundation
import SecureChannelCLI
import SecureChannelPKI
import TestSupport
import Testing

@Suite("CLI: ca and cert commands")
struct CACommandTests {
    @Test("--help lists the commands with examples")
    func help() async throws {
        let root = try await CLI.ok(["--help"])
        for word in ["ca", "cert", "EXAMPLES", "securechannel ca init"] { #expect(root.stdout.contains(word)) }
        let issue = try await CLI.ok(["ca", "issue", "server", "--help"])
        for word in ["--dns", "--ip", "--days", "--key-type", "--out", "EXAMPLE"] {
            #expect(issue.stdout.contains(word))
        }
    }

    @Test("the Barry/Jill/Chris session: init, issue, list, inspect, verify")
    func session() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let pki = dir.file("pki")
        try await CLI.barryJillChris(in: pki)
        let list = try await CLI.ok(["ca", "list", "--dir", pki])
        #expect(list.stdout.contains("CN=Jill") && list.stdout.contains("CN=Chris") && list.stdout.contains("valid"))
        let json = try await CLI.ok(["ca", "list", "--dir", pki, "--json"])
        let rows = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]]
        #expect(rows?.count == 2)
        #expect(rows?.first?["kind"] as? String == "server")
        #expect(rows?.first?["status"] as? String == "valid")
        #expect((rows?.first?["subjectAlternativeNames"] as? [String]) == ["DNS:localhost", "IP:127.0.0.1"])

        let inspect = try await CLI.ok(["cert", "inspect", "\(pki)/Jill.crt"])
        for word in [
            "CN=Jill", "CN=Barry", "DNS:localhost", "serverAuth", "digitalSignature", "CA:FALSE", "ECDSA P-256",
            "SHA-256 fingerprint", "days left",
        ] {
            #expect(inspect.stdout.contains(word), "missing \(word)")
        }
        let bundle = try SecureFile.read("\(pki)/Jill.crt") + SecureFile.read("\(pki)/ca.crt")
        try SecureFile.write(bundle, to: dir.file("chain.pem"), mode: 0o644)
        let chain = try await CLI.ok(["cert", "inspect", dir.file("chain.pem")])
        #expect(chain.stdout.contains("Certificate 1 of 2") && chain.stdout.contains("Certificate 2 of 2"))
        #expect(chain.stdout.contains("CA:TRUE, pathlen:0") && chain.stdout.contains("keyCertSign"))
        let ok = try await CLI.ok([
            "cert", "verify", "--ca", "\(pki)/ca.crt", "--purpose", "server", "--host", "localhost", "\(pki)/Jill.crt",
        ])
        #expect(ok.stdout == "OK\n")
        try await CLI.ok([
            "cert", "verify", "--ca", "\(pki)/ca.crt", "--purpose", "client", "--key", "\(pki)/Chris.key",
            "\(pki)/Chris.crt",
        ])
    }

    @Test("verify failures print the reason and exit non-zero")
    func verifyFailures() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let pki = dir.file("pki")
        let other = dir.file("other")
        try await CLI.barryJillChris(in: pki)
        try await CLI.ok(["ca", "init", "--dir", other, "--name", "Mallory"])
        let cases: [([String], String)] = [
            (["--purpose", "server", "\(pki)/Chris.crt"], "wrong purpose"),
            (["--host", "example.com", "\(pki)/Jill.crt"], "name mismatch"),
            (["--key", "\(pki)/Chris.key", "\(pki)/Jill.crt"], "does not belong"),
        ]
        for (arguments, reason) in cases {
            let result = try await CLI.run(["cert", "verify", "--ca", "\(pki)/ca.crt"] + arguments)
            #expect(result.status != 0)
            #expect(result.stderr.contains(reason), "\(result.stderr)")
            #expect(!result.stdout.contains("OK"))
        }
        let stranger = try await CLI.run(["cert", "verify", "--ca", "\(other)/ca.crt", "\(pki)/Jill.crt"])
        #expect(stranger.status != 0 && stranger.stderr.contains("unknown issuer"))
    }

    @Test("bad input: one line on stderr, non-zero status, nothing written")
    func badInput() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let pki = dir.file("pki")
        try await CLI.ok(["ca", "init", "--dir", pki])
        try SecureFile.write("-----BEGIN CERTIFICATE-----\nMIIB\n", to: dir.file("truncated.crt"), mode: 0o644)
        try SecureFile.write("", to: dir.file("empty-pass"), mode: 0o600)
        let cases: [[String]] = [
            ["ca", "init", "--dir", pki],
            ["ca", "init", "--dir", dir.file("missing/deeper")],
            ["ca", "init", "--dir", dir.file("p2"), "--passphrase-file", dir.file("empty-pass")],
            ["ca", "issue", "server", "--dir", pki, "--name", "Jill"],
            ["ca", "issue", "server", "--dir", pki, "--name", "Jill", "--ip", "1.2.3"],
            ["ca", "issue", "server", "--dir", pki, "--name", "Jill", "--dns", "under_score.example"],
            ["ca", "issue", "client", "--dir", pki, "--name", "Chris", "--days", "0"],
            ["ca", "issue", "client", "--dir", pki, "--name", "Chris", "--key-type", "dsa"],
            ["ca", "issue", "client", "--dir", dir.file("nowhere"), "--name", "Chris"],
            ["cert", "inspect", dir.file("truncated.crt")],
            ["cert", "inspect", dir.file("no-such-file.crt")],
            ["cert", "verify", "--ca", dir.file("truncated.crt"), "\(pki)/ca.crt"],
        ]
        let before = try FileManager.default.subpathsOfDirectory(atPath: dir.path).sorted()
        for arguments in cases {
            let result = try await CLI.run(arguments)
            let lines = result.stderr.split(separator: "\n")
            #expect(result.status != 0, "\(arguments) exited 0")
            #expect(lines.count == 1, "\(arguments): \(result.stderr)")
            #expect(result.stderr.hasPrefix("error: "), "\(arguments): \(result.stderr)")
        }
        #expect(try FileManager.default.subpathsOfDirectory(atPath: dir.path).sorted() == before)
    }

    @Test("an encrypted CA needs its passphrase from a file or the environment")
    func passphrase() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let pki = dir.file("pki")
        try SecureFile.write("s3cret passphrase\n", to: dir.file("pass"), mode: 0o600)
        try SecureFile.write("wrong\n", to: dir.file("wrong"), mode: 0o600)
        try await CLI.ok(["ca", "init", "--dir", pki, "--passphrase-file", dir.file("pass")])
        let missing = try await CLI.run(["ca", "issue", "client", "--dir", pki, "--name", "Chris"])
        #expect(missing.status != 0 && missing.stderr.contains("SECURECHANNEL_CA_PASSPHRASE"))
        let wrong = try await CLI.run([
            "ca", "issue", "client", "--dir", pki, "--name", "Chris", "--passphrase-file", dir.file("wrong"),
        ])
        #expect(wrong.status != 0 && wrong.stderr.contains("wrong passphrase"))
        #expect(!SecureFile.exists("\(pki)/Chris.key"))
        try await CLI.ok([
            "ca", "issue", "client", "--dir", pki, "--name", "Chris", "--passphrase-file", dir.file("pass"),
        ])
        let viaEnvironment = try await CLI.run(
            ["ca", "issue", "client", "--dir", pki, "--name", "Chris2"],
            environment: ["SECURECHANNEL_CA_PASSPHRASE": "s3cret passphrase"])
        #expect(viaEnvironment.status == 0, "\(viaEnvironment.stderr)")
    }

    @Test("two ca issue processes at once never corrupt the inventory")
    func concurrentProcesses() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let pki = dir.file("pki")
        try await CLI.ok(["ca", "init", "--dir", pki])
        let count = 8
        try await withThrowingTaskGroup(of: Int32.self) { group in
            for index in 0..<count {
                group.addTask {
                    try await CLI.run(["ca", "issue", "client", "--dir", pki, "--name", "c\(index)"]).status
                }
            }
            for try await status in group { #expect(status == 0) }
        }
        let inventory = try CertificateAuthority.openStore(directory: pki).certificates()
        #expect(inventory.count == count)
        #expect(Set(inventory.map(\.serial)).count == count)
    }

    @Test("execute runs in-process and maps errors to a non-zero status")
    func inProcess() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        #expect(await SecureChannelCommand.execute(["ca", "init", "--dir", dir.file("pki")]) == 0)
        #expect(SecureFile.exists(dir.file("pki/ca.crt")))
        #expect(await SecureChannelCommand.execute(["ca", "init", "--dir", dir.file("pki")]) == 1)
        #expect(await SecureChannelCommand.execute(["ca", "frobnicate"]) == 64)
    }

    @Test("one-character relative paths work (NSString.deletingLastPathComponent traps on them on Linux)")
    func oneCharacterPaths() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let binary = try Tools.securechannel()
        let script = """
            cd '\(dir.path)' && '\(binary)' ca init --dir p --name Barry && '\(binary)' cert request --name k --key-out k --csr-out c \\
            && '\(binary)' ca sign --dir p --csr c --kind client --out s
            """
        let result = try await Tools.run("/bin/sh", ["-c", script])
        #expect(result.status == 0, "\(result.stderr.prefix(400))")
        for file in ["p/ca.crt", "p/ca.key", "k", "c", "s.crt"] {
            #expect(SecureFile.exists(dir.file(file)), "\(file)")
        }
        #expect(SecureFile.split("k") == ("", "k"))
        #expect(SecureFile.split("/k") == ("/", "k"))
        #expect(SecureFile.split("a//b/") == ("a", "b"))
        #expect(SecureFile.split("/x/y/z") == ("/x/y", "z"))
    }
}
