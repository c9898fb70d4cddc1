import Foundation
import SecureChannelPKI
import SwiftASN1
import TestSupport
import Testing
import X509

/// Issue 15, end to end: X.509-SVIDs, the new rules on a running server, CA:TRUE leaves, SPIFFE IDs in the log.
@Suite("CLI: identities beyond a common name", .timeLimit(.minutes(3)))
struct IdentityTests {
    @Test(
        "ca issue workload makes an X.509-SVID openssl reads as such; openssl s_server and s_client accept it both ways"
    )
    func workloadCertificates() async throws {
        let openssl = try Tools.require("openssl")
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let pki = dir.file("pki")
        try await CLI.barryJillChris(in: pki)
        let issued = try await CLI.ok([
            "ca", "issue", "workload", "--dir", pki, "--spiffe-id", "spiffe://example.org/ns/prod/web", "--dns",
            "localhost",
        ])
        #expect(issued.stdout.contains("certificate: \(pki)/web.crt"), "\(issued.stdout)")
        try await CLI.ok(["ca", "issue", "workload", "--dir", pki, "--spiffe-id", "spiffe://example.org/ns/prod/db"])
        let text = try await Tools.run(openssl, ["x509", "-in", "\(pki)/web.crt", "-noout", "-text"]).stdout
        #expect(text.components(separatedBy: "URI:").count == 2, "exactly one URI SAN: \(text)")
        #expect(text.contains("URI:spiffe://example.org/ns/prod/web") && text.contains("DNS:localhost"))
        #expect(text.contains("TLS Web Server Authentication") && text.contains("TLS Web Client Authentication"))
        #expect(text.contains("CA:FALSE") && text.contains("Digital Signature"))
        for bad in ["spiffe://Example.org/web", "spiffe://example.org", "spiffe://example.org/a//b", "http://x/y"] {
            let refused = try await CLI.run(["ca", "issue", "workload", "--dir", pki, "--spiffe-id", bad])
            #expect(refused.status == 64 && refused.stderr.contains("not a SPIFFE ID"), "\(bad): \(refused.stderr)")
        }
        let list = try await CLI.ok(["ca", "list", "--dir", pki, "--json"]).stdout
        #expect(list.contains("\"spiffeID\" : \"spiffe://example.org/ns/prod/web\""))
        let inspect = try await CLI.ok(["cert", "inspect", "\(pki)/web.crt"]).stdout
        #expect(inspect.contains("SPIFFE ID:") && inspect.contains("spiffe://example.org/ns/prod/web (X.509-SVID)"))

        // Our server presents an SVID and admits SVIDs by pattern; openssl's client presents one.
        let server = try await ServerProcess.start(
            dir: pki, cert: "web",
            extra: [
                "--allow-spiffe-id", "spiffe://example.org/ns/*/db", "--log-format", "json", "--idle-timeout", "1",
            ])
        defer { server.stop() }
        let client = try await Tools.run(
            openssl,
            [
                "s_client", "-connect", "127.0.0.1:\(server.port)", "-servername", "localhost", "-cert",
                "\(pki)/db.crt", "-key", "\(pki)/db.key", "-CAfile", "\(pki)/ca.crt", "-quiet", "-verify_return_error",
            ], stdin: "svid hello\n", timeout: 20)
        #expect(client.stdout.contains("svid hello"), "\(client.stdout) \(client.stderr)")
        let log = try await server.process.waitForOutput {
            $0.contains("\"spiffe_id\":\"spiffe://example.org/ns/prod/db\"")
        }
        #expect(log.contains("spiffe_id"))

        // openssl's server presents an SVID; send verifies it by SPIFFE ID instead of by name.
        let sslServer = try RunningProcess(
            openssl,
            [
                "s_server", "-accept", "127.0.0.1:0", "-cert", "\(pki)/db.crt", "-key", "\(pki)/db.key",
                "-CAfile", "\(pki)/ca.crt", "-Verify", "1", "-verify_return_error", "-rev",
            ])
        defer { sslServer.stop() }
        try await sslServer.waitForOutput { $0.contains("ACCEPT") }
        let port = try #require(sslServer.port(after: "ACCEPT"))
        let sent = try await CLI.run([
            "send", "--connect", "127.0.0.1:\(port)", "--server-spiffe-id", "spiffe://example.org/ns/**", "--cert",
            "\(pki)/web.crt", "--key", "\(pki)/web.key", "--ca", "\(pki)/ca.crt", "olleh",
        ])
        #expect(sent.status == 0 && sent.stdout.contains("hello"), "\(sent.stdout) \(sent.stderr)")
        let wrong = try await CLI.run([
            "send", "--connect", "127.0.0.1:\(port)", "--server-spiffe-id", "spiffe://example.org/ns/prod/web",
            "--cert", "\(pki)/web.crt", "--key", "\(pki)/web.key", "--ca", "\(pki)/ca.crt", "x",
        ])
        #expect(wrong.status == 1 && wrong.stderr.contains("does not match"), "\(wrong.stderr)")
    }

    @Test(
        "a running server applies the new rules: a * in --allow-cn refused at start, key pins, SPIFFE rules and two URI SANs"
    )
    func rulesOnAServer() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let pki = dir.file("pki")
        try await CLI.barryJillChris(in: pki)
        let start = try await CLI.run([
            "serve", "--listen", "127.0.0.1:0", "--cert", "\(pki)/Jill.crt", "--key", "\(pki)/Jill.key", "--ca",
            "\(pki)/ca.crt", "--allow-cn", "C*",
        ])
        #expect(start.status == 1 && start.stderr.contains("--allow-cn 'C*'"), "\(start.stderr)")
        #expect(start.stderr.split(separator: "\n").count == 1 && !start.stdout.contains("listening"))

        try await CLI.ok(["ca", "issue", "client", "--dir", pki, "--name", "Dana"])
        try await CLI.ok([
            "ca", "issue", "client", "--dir", pki, "--name", "Two", "--uri", "spiffe://example.org/two", "--uri",
            "https://example.org/two",
        ])
        let pin = try #require(
            try await CLI.ok(["cert", "inspect", "\(pki)/Chris.crt"]).stdout.split(separator: "\n")
                .first { $0.contains("Public key SHA-256") }?.split(separator: " ").last.map(String.init))
        let server = try await ServerProcess.start(
            dir: pki, extra: ["--allow-spki-sha256", pin, "--allow-spiffe-id", "spiffe://example.org/*"])
        defer { server.stop() }
        let chris = try await server.send(pki, ["pinned"])
        #expect(chris.status == 0 && chris.stdout == "pinned\n", "\(chris.stderr)")
        let dana = try await server.send(pki, ["nope"], client: "Dana")
        #expect(dana.status == 1)
        let two = try await server.send(pki, ["nope"], client: "Two")
        #expect(two.status == 1)
        let log = try await server.process.waitForOutput { $0.contains("not an X.509-SVID") }
        #expect(log.contains("CN=Dana") && log.contains("is not allowed"))
        #expect(log.contains("2 URI SANs"), "\(log)")
        // Renewing with the same key keeps the pin valid: the point of pinning keys.
        try await CLI.ok(["ca", "renew", "--dir", pki, "--name", "Chris", "--reuse-key"])
        #expect(try await server.send(pki, ["renewed"]).status == 0)
    }

    @Test("ca sign --kind workload signs an SVID request under the same policy; tunnel client --server-spiffe-id")
    func signedWorkloadAndTunnel() async throws {
        let curl = try Tools.require("curl")
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let pki = dir.file("pki")
        try await CLI.barryJillChris(in: pki)
        try await CLI.ok([
            "cert", "request", "--name", "api", "--uri", "spiffe://example.org/ns/api", "--dns", "localhost",
            "--key-out", "\(pki)/api.key", "--csr-out", dir.file("api.csr"),
        ])
        let signed = try await CLI.ok(["ca", "sign", "--dir", pki, "--csr", dir.file("api.csr"), "--kind", "workload"])
        #expect(signed.stdout.contains("signed workload certificate"), "\(signed.stdout)")
        let inspect = try await CLI.ok(["cert", "inspect", "\(pki)/api.crt"]).stdout
        #expect(inspect.contains("serverAuth, clientAuth") && inspect.contains("spiffe://example.org/ns/api"))
        try await CLI.ok([
            "cert", "request", "--name", "two", "--uri", "spiffe://example.org/a", "--uri", "spiffe://example.org/b",
            "--key-out", dir.file("two.key"), "--csr-out", dir.file("two.csr"),
        ])
        let two = try await CLI.run(["ca", "sign", "--dir", pki, "--csr", dir.file("two.csr"), "--kind", "workload"])
        #expect(two.status == 1 && two.stderr.contains("exactly one URI name"), "\(two.stderr)")

        let (web, webPort) = try await TunnelCLITests.httpServer(dir.path)
        defer { web.stop() }
        try SecureFile.write("through the SVID tunnel\n", to: dir.file("page.txt"), mode: 0o644)
        let (server, serverPort) = try await TunnelCLITests.start([
            "server", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:\(webPort)", "--cert", "\(pki)/api.crt",
            "--key", "\(pki)/api.key", "--ca", "\(pki)/ca.crt", "--allow-cn", "Chris", "--keylog",
            dir.file("server.keylog"),
        ])
        defer { server.stop() }
        #expect(server.output().contains("anyone with this file can decrypt the traffic"))
        for (pattern, works) in [("spiffe://example.org/ns/*", true), ("spiffe://example.org/other/*", false)] {
            let (client, clientPort) = try await TunnelCLITests.start([
                "client", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:\(serverPort)", "--server-spiffe-id",
                pattern, "--cert", "\(pki)/Chris.crt", "--key", "\(pki)/Chris.key", "--ca", "\(pki)/ca.crt",
                "--keylog", dir.file("client.keylog"),
            ])
            defer { client.stop() }
            let page = try await Tools.run(
                curl, ["-sS", "--max-time", "10", "http://127.0.0.1:\(clientPort)/page.txt"])
            #expect(
                page.stdout.contains("through the SVID tunnel") == works, "\(pattern): \(page.stdout) \(page.stderr)")
            if works {
                // Both tunnel ends wrote their TLS secrets (key log), 0600.
                for file in ["server.keylog", "client.keylog"] {
                    let text = try String(contentsOfFile: dir.file(file), encoding: .utf8)
                    #expect(text.contains("CLIENT_TRAFFIC_SECRET_0 "), "\(file)")
                    #expect(try SecureFile.mode(of: dir.file(file)) == 0o600)
                }
            } else {
                let log = try await client.waitForOutput { $0.contains("does not match") }
                #expect(log.contains("SPIFFE ID spiffe://example.org/ns/api does not match"))
            }
        }
    }

    /// A leaf that claims CA:TRUE, with digitalSignature, both EKUs and DNS:localhost, signed by Barry.
    static func caLeaf(in pki: String) throws {
        let caKey = try PrivateKeyIO.parse(try SecureFile.read("\(pki)/ca.key"), source: "ca.key")
        let ca = try CertificateIO.parseCertificates(try SecureFile.read("\(pki)/ca.crt"), source: "ca.crt")[0]
        let key = try KeyType.ecdsaP256.generate()
        let certificate = try Certificate(
            version: .v3, serialNumber: try SerialNumbers.random(), publicKey: key.publicKey,
            notValidBefore: Date() - 300, notValidAfter: Date() + 86_400, issuer: ca.subject,
            subject: try DistinguishedName { CommonName("Boss") }, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(digitalSignature: true, keyCertSign: true))
                try ExtendedKeyUsage([.serverAuth, .clientAuth])
                SubjectAlternativeNames([.dnsName("localhost")])
                AuthorityKeyIdentifier(keyIdentifier: try ca.extensions.subjectKeyIdentifier?.keyIdentifier)
            }, issuerPrivateKey: caKey)
        try SecureFile.write(try CertificateIO.pem([certificate]), to: "\(pki)/Boss.crt", mode: 0o644)
        try SecureFile.write(try PrivateKeyIO.pem(key), to: "\(pki)/Boss.key", mode: 0o600)
    }

    @Test("a CA:TRUE certificate is refused as a leaf on both sides, with that reason, whatever its usages say")
    func caCertificateAsLeaf() async throws {
        let openssl = try Tools.require("openssl")
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let pki = dir.file("pki")
        try await CLI.barryJillChris(in: pki)
        try Self.caLeaf(in: pki)
        let server = try await ServerProcess.start(dir: pki)
        defer { server.stop() }
        _ = try await server.presentWithOpenSSL(pki, client: "Boss")
        let log = try await server.process.waitForOutput { $0.contains("CN=Boss") }
        #expect(log.contains("it is a CA certificate (basicConstraints CA:TRUE)"), "\(log)")

        let sslServer = try RunningProcess(
            openssl,
            ["s_server", "-accept", "127.0.0.1:0", "-cert", "\(pki)/Boss.crt", "-key", "\(pki)/Boss.key", "-rev"])
        defer { sslServer.stop() }
        try await sslServer.waitForOutput { $0.contains("ACCEPT") }
        let port = try #require(sslServer.port(after: "ACCEPT"))
        let sent = try await CLI.run([
            "send", "--connect", "127.0.0.1:\(port)", "--server-name", "localhost", "--cert", "\(pki)/Chris.crt",
            "--key", "\(pki)/Chris.key", "--ca", "\(pki)/ca.crt", "x",
        ])
        #expect(sent.status == 1 && sent.stderr.contains("it is a CA certificate"), "\(sent.stderr)")
    }
}
