import Foundation
import SecureChannelPKI
import TestSupport
import Testing

@Suite(
    "CLI: revocation and reload with real peers", .timeLimit(.minutes(3)),
    .enabled(if: Tools.enabled("openssl"), "needs openssl"))
struct RevocationCLITests {
    @Test("our CRL verifies with openssl crl, and openssl verify -crl_check rejects the revoked certificate only")
    func opensslReadsOurCRL() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        try await CLI.ok(["ca", "issue", "client", "--dir", dir.path, "--name", "Eve"])
        let revoke = try await CLI.ok(["ca", "revoke", "--dir", dir.path, "--name", "Eve", "--reason", "keyCompromise"])
        #expect(revoke.stdout.contains("revoked client certificate CN=Eve"))
        try await OpenSSL.run(["crl", "-in", dir.file("crl.pem"), "-CAfile", dir.file("ca.crt"), "-noout"])
        let openssl = try Tools.require("openssl")
        let eve = try await Tools.run(
            openssl,
            [
                "verify", "-crl_check", "-CRLfile", dir.file("crl.pem"), "-CAfile", dir.file("ca.crt"),
                dir.file("Eve.crt"),
            ])
        #expect(eve.status != 0 && (eve.stdout + eve.stderr).contains("certificate revoked"))
        try await OpenSSL.run([
            "verify", "-crl_check", "-CRLfile", dir.file("crl.pem"), "-CAfile", dir.file("ca.crt"),
            dir.file("Chris.crt"),
        ])
        let text = try await Tools.run(openssl, ["crl", "-in", dir.file("crl.pem"), "-noout", "-text"])
        #expect(text.stdout.contains("Key Compromise") && text.stdout.contains("CRL Number"))
        let list = try await CLI.ok(["ca", "list", "--dir", dir.path])
        #expect(list.stdout.contains("revoked"))
        let der = try await CLI.ok([
            "ca", "crl", "--dir", dir.path, "--out", dir.file("crl.der"), "--der", "--days", "30",
        ])
        #expect(der.stdout.contains("CRL number 02"))
        try await OpenSSL.run([
            "crl", "-inform", "DER", "-in", dir.file("crl.der"), "-CAfile", dir.file("ca.crt"), "-noout",
        ])
        let inspect = try await CLI.ok(["cert", "inspect", dir.file("crl.der")])
        #expect(inspect.stdout.contains("keyCompromise") && inspect.stdout.contains("CRL number"))
    }

    @Test("a CRL made by openssl ca -gencrl is read by inspect and enforced by serve")
    func opensslCRLEnforced() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        // An OpenSSL CA with its database, issuing Jill and Chris, then revoking Chris.
        try SecureFile.write("", to: dir.file("index.txt"), mode: 0o644)
        try SecureFile.write("1000\n", to: dir.file("crlnumber"), mode: 0o644)
        try SecureFile.write(
            """
            [ca]
            default_ca = barry
            [barry]
            database = \(dir.path)/index.txt
            crlnumber = \(dir.path)/crlnumber
            default_md = sha256
            default_crl_days = 7
            """, to: dir.file("ca.cnf"), mode: 0o644)
        try await OpenSSL.run([
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            dir.file("ca.key"),
            "-out", dir.file("ca.crt"), "-days", "30", "-subj", "/CN=Barry",
        ])
        try SecureFile.write(
            "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n", to: dir.file("server.ext"), mode: 0o644)
        try SecureFile.write("extendedKeyUsage=clientAuth\n", to: dir.file("client.ext"), mode: 0o644)
        for (name, ext) in [("Jill", "server.ext"), ("Chris", "client.ext"), ("Dave", "client.ext")] {
            try await OpenSSL.run([
                "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                dir.file("\(name).key"),
                "-out", dir.file("\(name).csr"), "-subj", "/CN=\(name)",
            ])
            try await OpenSSL.run([
                "x509", "-req", "-in", dir.file("\(name).csr"), "-CA", dir.file("ca.crt"), "-CAkey", dir.file("ca.key"),
                "-days", "10", "-extfile", dir.file(ext), "-out", dir.file("\(name).crt"),
            ])
        }
        try await OpenSSL.run([
            "ca", "-config", dir.file("ca.cnf"), "-keyfile", dir.file("ca.key"), "-cert", dir.file("ca.crt"),
            "-revoke", dir.file("Chris.crt"), "-crl_reason", "keyCompromise",
        ])
        try await OpenSSL.run([
            "ca", "-config", dir.file("ca.cnf"), "-keyfile", dir.file("ca.key"), "-cert", dir.file("ca.crt"),
            "-gencrl", "-out", dir.file("crl.pem"),
        ])
        let inspect = try await CLI.ok(["cert", "inspect", dir.file("crl.pem")])
        #expect(
            inspect.stdout.contains("CN=Barry") && inspect.stdout.contains("keyCompromise")
                && inspect.stdout.contains("1000"))

        let server = try await ServerProcess.start(
            dir: dir.path, extra: ["--allow-any-client", "--crl", dir.file("crl.pem")])
        defer { server.stop() }
        let chris = try await server.send(dir.path, ["revoked?"])
        #expect(chris.status != 0)
        let dave = try await server.send(dir.path, ["fine"], client: "Dave")
        #expect(dave.stdout == "fine\n")
        let log = try await server.process.waitForOutput { $0.contains("revoked: serial") }
        #expect(log.contains("reason keyCompromise"))
    }

    @Test("revoking a connected client cuts it off within seconds with a log line; resumption cannot bring it back")
    func revokeWhileConnected() async throws {
        let openssl = try Tools.require("openssl")
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        try await CLI.ok(["ca", "crl", "--dir", dir.path])
        let server = try await ServerProcess.start(
            dir: dir.path, extra: ["--allow-any-client", "--crl", dir.file("crl.pem")])
        defer { server.stop() }
        func client(_ extra: [String]) throws -> RunningProcess {
            try RunningProcess(
                openssl,
                [
                    "s_client", "-connect", "127.0.0.1:\(server.port)", "-servername", "localhost",
                    "-CAfile", dir.file("ca.crt"), "-cert", dir.file("Chris.crt"), "-key", dir.file("Chris.key"),
                    "-quiet", "-ign_eof",
                ] + extra)
        }
        let connected = try client(["-sess_out", dir.file("session.pem")])
        defer { connected.stop() }
        connected.send("first line\n")
        try await connected.waitForOutput { $0.contains("first line") }
        try await CLI.ok(["ca", "revoke", "--dir", dir.path, "--name", "Chris", "--reason", "keyCompromise"])
        let revokedAt = Date()
        let log = try await server.process.waitForOutput(timeout: 5) {
            $0.contains("closed: client certificate revoked")
        }
        // About 1 s unloaded (the 0.5 s file watch, the reload, the sweep); 2.6 s was seen in a loaded CI run. The
        // bound keeps it apart from the only other way it could end, the 300 s idle timeout.
        #expect(Date().timeIntervalSince(revokedAt) < 5)
        #expect(log.contains("reason keyCompromise"))
        _ = try await connected.waitForExit(timeout: 5)

        // Resuming the old session must not get past the CRL.
        let resumed = try client(["-sess_in", dir.file("session.pem")])
        defer { resumed.stop() }
        resumed.send("resumed line\n")
        let refused = try await server.process.waitForOutput { $0.components(separatedBy: "revoked: serial").count > 2 }
        #expect(!resumed.output().contains("resumed line"))
        #expect(refused.contains("refused") || refused.contains("revoked"))

        // SIGHUP reloads too.
        server.process.signal(SIGHUP)
        try await server.process.waitForOutput { $0.contains("(SIGHUP)") }
    }

    @Test("serve refuses to start with an expired CRL unless --crl-expired allow")
    func expiredCRL() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        let ca = try CertificateAuthority.open(directory: dir.path)
        _ = try ca.generateCRL(days: 1, now: Date() - 3 * 86_400)
        let refused = try await CLI.run([
            "serve", "--listen", "127.0.0.1:0", "--cert", dir.file("Jill.crt"), "--key", dir.file("Jill.key"),
            "--ca", dir.file("ca.crt"), "--crl", dir.file("crl.pem"), "--allow-any-client",
        ])
        #expect(refused.status != 0 && refused.stderr.contains("expired"))
        let server = try await ServerProcess.start(
            dir: dir.path, extra: ["--allow-any-client", "--crl", dir.file("crl.pem"), "--crl-expired", "allow"])
        defer { server.stop() }
        #expect(try await server.send(dir.path, ["ok"]).stdout == "ok\n")
    }
}
