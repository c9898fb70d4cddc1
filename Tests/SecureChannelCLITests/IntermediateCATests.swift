import Foundation
import SecureChannelPKI
import TestSupport
import Testing
import X509

/// Issue 16, the hierarchy part: an offline root, an intermediate that issues, chains that peers trusting only the
/// root verify, and name constraints honoured by openssl and by us.
@Suite("CLI: an offline root and an issuing intermediate", .timeLimit(.minutes(3)))
struct IntermediateCATests {
    /// Root (for intermediates) → Issuing (constrained to localhost and .example.com) → Jill, Chris.
    static func hierarchy(in dir: TemporaryDirectory) async throws -> (root: String, issuing: String) {
        let root = dir.file("root")
        let issuing = dir.file("issuing")
        try await CLI.ok(["ca", "init", "--dir", root, "--name", "Barry Root", "--intermediates"])
        let made = try await CLI.ok([
            "ca", "init", "--dir", issuing, "--parent", root, "--name", "Barry Issuing", "--permit-dns", "localhost",
            "--permit-dns", ".example.com",
        ])
        #expect(made.stdout.contains("created intermediate CA (signed by \(root))"), "\(made.stdout)")
        try await CLI.ok([
            "ca", "issue", "server", "--dir", issuing, "--name", "Jill", "--dns", "localhost", "--ip", "127.0.0.1",
        ])
        try await CLI.ok(["ca", "issue", "client", "--dir", issuing, "--name", "Chris"])
        return (root, issuing)
    }

    @Test(
        "leaves carry the intermediate; openssl verify, s_server and s_client and our ends accept the chain with only the root trusted"
    )
    func chain() async throws {
        let openssl = try Tools.require("openssl")
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let (root, issuing) = try await Self.hierarchy(in: dir)
        let chain = try CertificateIO.parseCertificates(try SecureFile.read("\(issuing)/Jill.crt"), source: "Jill.crt")
        #expect(chain.count == 2 && chain[1].subject.description == "CN=Barry Issuing")
        let rootList = try await CLI.ok(["ca", "list", "--dir", root]).stdout
        #expect(rootList.contains("intermediate") && rootList.contains("CN=Barry Issuing"), "\(rootList)")
        let inspect = try await CLI.ok(["cert", "inspect", "\(issuing)/ca.crt"]).stdout
        #expect(inspect.contains("CA:TRUE, pathlen:0") && inspect.contains("CN=Barry Root"))

        let verify = try await Tools.run(
            openssl, ["verify", "-CAfile", "\(root)/ca.crt", "-untrusted", "\(issuing)/ca.crt", "\(issuing)/Jill.crt"])
        #expect(verify.status == 0 && verify.stdout.contains("OK"), "\(verify.stdout) \(verify.stderr)")
        try await CLI.ok([
            "cert", "verify", "--ca", "\(root)/ca.crt", "--purpose", "server", "--server-name", "localhost",
            "\(issuing)/Jill.crt",
        ])

        // Our ends, trusting only the root.
        let server = try await ServerProcess.start(
            dir: issuing, extra: ["--allow-cn", "Chris", "--idle-timeout", "1"], ca: "\(root)/ca.crt")
        defer { server.stop() }
        let sent = try await CLI.run([
            "send", "--connect", "127.0.0.1:\(server.port)", "--server-name", "localhost", "--cert",
            "\(issuing)/Chris.crt", "--key", "\(issuing)/Chris.key", "--ca", "\(root)/ca.crt", "through the chain",
        ])
        #expect(sent.status == 0 && sent.stdout == "through the chain\n", "\(sent.stderr)")
        // openssl's client against our server: it sends Chris's chain, trusts only the root.
        let client = try await Tools.run(
            openssl,
            [
                "s_client", "-connect", "127.0.0.1:\(server.port)", "-servername", "localhost", "-cert",
                "\(issuing)/Chris.crt", "-cert_chain", "\(issuing)/ca.crt", "-key", "\(issuing)/Chris.key",
                "-CAfile", "\(root)/ca.crt", "-verify_return_error", "-quiet",
            ], stdin: "openssl line\n", timeout: 20)
        #expect(client.stdout.contains("openssl line"), "\(client.stdout) \(client.stderr)")
        // openssl's server with the chain; our client trusts only the root.
        let sslServer = try RunningProcess(
            openssl,
            [
                "s_server", "-accept", "127.0.0.1:0", "-cert", "\(issuing)/Jill.crt", "-cert_chain",
                "\(issuing)/ca.crt", "-key", "\(issuing)/Jill.key", "-CAfile", "\(root)/ca.crt", "-Verify", "2",
                "-verify_return_error", "-rev",
            ])
        defer { sslServer.stop() }
        try await sslServer.waitForOutput { $0.contains("ACCEPT") }
        let port = try #require(sslServer.port(after: "ACCEPT"))
        let reversed = try await CLI.run([
            "send", "--connect", "127.0.0.1:\(port)", "--server-name", "localhost", "--cert", "\(issuing)/Chris.crt",
            "--key", "\(issuing)/Chris.key", "--ca", "\(root)/ca.crt", "niahc",
        ])
        #expect(reversed.status == 0 && reversed.stdout == "chain\n", "\(reversed.stdout) \(reversed.stderr)")
    }

    @Test(
        "name constraints: the intermediate refuses to issue outside them; a leaf outside them is refused by openssl and by us"
    )
    func nameConstraints() async throws {
        let openssl = try Tools.require("openssl")
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let (root, issuing) = try await Self.hierarchy(in: dir)
        try await CLI.ok(["ca", "issue", "server", "--dir", issuing, "--name", "Api", "--dns", "api.example.com"])
        let outside = try await CLI.run([
            "ca", "issue", "server", "--dir", issuing, "--name", "Evil", "--dns", "evil.test",
        ])
        #expect(outside.status == 1 && outside.stderr.contains("name constraints"), "\(outside.stderr)")
        #expect(!SecureFile.exists("\(issuing)/Evil.crt"))

        // The same leaf made by hand with the intermediate's key: both verifiers refuse it.
        let key = try PrivateKeyIO.parse(try SecureFile.read("\(issuing)/ca.key"), source: "ca.key")
        let inter = try CertificateIO.parseCertificates(try SecureFile.read("\(issuing)/ca.crt"), source: "ca.crt")[0]
        let leafKey = try KeyType.ecdsaP256.generate()
        let leaf = try Certificate(
            version: .v3, serialNumber: try SerialNumbers.random(), publicKey: leafKey.publicKey,
            notValidBefore: Date() - 300, notValidAfter: Date() + 86_400, issuer: inter.subject,
            subject: try DistinguishedName { CommonName("Evil") }, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames([.dnsName("evil.test")])
                AuthorityKeyIdentifier(keyIdentifier: try inter.extensions.subjectKeyIdentifier?.keyIdentifier)
            }, issuerPrivateKey: key)
        try SecureFile.write(try CertificateIO.pem([leaf, inter]), to: dir.file("evil.crt"), mode: 0o644)
        let theirs = try await Tools.run(
            openssl, ["verify", "-CAfile", "\(root)/ca.crt", "-untrusted", "\(issuing)/ca.crt", dir.file("evil.crt")])
        #expect(theirs.status != 0, "openssl refuses: \(theirs.stdout) \(theirs.stderr)")
        let ours = try await CLI.run(["cert", "verify", "--ca", "\(root)/ca.crt", dir.file("evil.crt")])
        #expect(ours.status == 1 && ours.stderr.contains("invalid chain"), "\(ours.stderr)")
        let fine = try await CLI.run(["cert", "verify", "--ca", "\(root)/ca.crt", "\(issuing)/Api.crt"])
        #expect(fine.status == 0, "\(fine.stderr)")
    }

    @Test(
        "each CA signs its own CRL: a server given both refuses a revoked leaf, and every leaf of a revoked intermediate"
    )
    func revocation() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let (root, issuing) = try await Self.hierarchy(in: dir)
        try await CLI.ok(["ca", "issue", "client", "--dir", issuing, "--name", "Dana"])
        try await CLI.ok(["ca", "crl", "--dir", root])
        try await CLI.ok(["ca", "revoke", "--dir", issuing, "--name", "Chris", "--reason", "keyCompromise"])
        let server = try await ServerProcess.start(
            dir: issuing,
            extra: ["--allow-any-client", "--crl", "\(root)/crl.pem", "--crl", "\(issuing)/crl.pem"],
            ca: "\(root)/ca.crt")
        defer { server.stop() }
        func send(_ name: String) async throws -> ProcessResult {
            try await CLI.run([
                "send", "--connect", "127.0.0.1:\(server.port)", "--server-name", "localhost", "--cert",
                "\(issuing)/\(name).crt", "--key", "\(issuing)/\(name).key", "--ca", "\(root)/ca.crt", "hi",
            ])
        }
        #expect(try await send("Dana").status == 0)
        #expect(try await send("Chris").status == 1)
        let log = try await server.process.waitForOutput { $0.contains("revoked: serial") }
        #expect(log.contains("CN=Chris") && log.contains("keyCompromise"))
        let announced = log.split(separator: "\n").first { $0.contains("which is not a trusted CA itself") }
        #expect(announced?.contains(" info ") == true, "the intermediate's CRL is announced, as information: \(log)")

        // The root revokes the intermediate: after the reload, Dana (still valid at the intermediate) is refused.
        let rows = try await CLI.ok(["ca", "list", "--dir", root, "--json"]).stdout
        let list = try #require(try JSONSerialization.jsonObject(with: Data(rows.utf8)) as? [[String: Any]])
        let serial = try #require(list.first { $0["kind"] as? String == "intermediate" }?["serial"] as? String)
        try await CLI.ok(["ca", "revoke", "--dir", root, "--serial", serial, "--reason", "cACompromise"])
        try await server.process.waitForOutput { $0.contains("reloaded") }
        let refused = try await send("Dana")
        #expect(refused.status == 1)
        let after = try await server.process.waitForOutput { $0.contains("its issuing CA CN=Barry Issuing is revoked") }
        #expect(after.contains("cACompromise"))
    }

    @Test("a root without --intermediates cannot sign an intermediate; an intermediate cannot sign one either")
    func pathLength() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.ok(["ca", "init", "--dir", dir.file("plain")])
        let refused = try await CLI.run(["ca", "init", "--dir", dir.file("sub"), "--parent", dir.file("plain")])
        #expect(refused.status == 1 && refused.stderr.contains("--intermediates"), "\(refused.stderr)")
        #expect(!SecureFile.exists(dir.file("sub/ca.key")))
        let (_, issuing) = try await Self.hierarchy(in: dir)
        let deeper = try await CLI.run(["ca", "init", "--dir", dir.file("deeper"), "--parent", issuing])
        #expect(deeper.status == 1 && deeper.stderr.contains("pathlen 0"))
    }
}
