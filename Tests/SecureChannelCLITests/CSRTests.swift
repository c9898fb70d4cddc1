import Foundation
import SecureChannelPKI
import TestSupport
import Testing

/// Keys never leave the machine that uses them: `cert request` there, `ca sign` at the CA.
@Suite("CLI: cert request and ca sign", .timeLimit(.minutes(3)))
struct CSRTests {
    @Test("a server key made by cert request, its CSR signed by ca sign: serve and send work, no key at the CA")
    func requestSignServe() async throws {
        let ca = try TemporaryDirectory()
        let host = try TemporaryDirectory()
        defer {
            ca.cleanup()
            host.cleanup()
        }
        try await CLI.barryJillChris(in: ca.path)
        let made = try await CLI.ok([
            "cert", "request", "--name", "web", "--dns", "localhost", "--ip", "127.0.0.1",
            "--key-out", host.file("web.key"), "--csr-out", host.file("web.csr"),
        ])
        #expect(made.stdout.contains("private key: \(host.file("web.key")) (mode 0600"))
        var info = stat()
        #expect(stat(host.file("web.key"), &info) == 0 && info.st_mode & 0o777 == 0o600)
        // Only the CSR travels to the CA.
        try SecureFile.write(try SecureFile.read(host.file("web.csr")), to: ca.file("web.csr"), mode: 0o644)
        let signed = try await CLI.ok([
            "ca", "sign", "--dir", ca.path, "--csr", ca.file("web.csr"), "--kind", "server", "--days", "30",
        ])
        #expect(signed.stdout.contains("names: DNS:localhost, IP:127.0.0.1"), "\(signed.stdout)")
        #expect(!SecureFile.exists(ca.file("web.key")))
        let list = try await CLI.ok(["ca", "list", "--dir", ca.path])
        #expect(list.stdout.contains("CN=web"))
        // The CA cannot renew what it holds no key for: a new request is the way.
        let renew = try await CLI.run(["ca", "renew", "--dir", ca.path, "--name", "web"])
        #expect(renew.status == 1 && renew.stderr.contains("issued from a CSR"), "\(renew.stderr)")
        try SecureFile.write(try SecureFile.read(ca.file("web.crt")), to: host.file("web.crt"), mode: 0o644)

        let server = try RunningProcess(
            try Tools.securechannel(),
            [
                "serve", "--listen", "127.0.0.1:0", "--cert", host.file("web.crt"), "--key", host.file("web.key"),
                "--ca", ca.file("ca.crt"), "--allow-cn", "Chris",
            ])
        defer { server.stop() }
        try await server.waitForOutput { $0.contains("listening on") }
        let reply = try await ServerProcess(process: server, port: try #require(server.port(after: "listening on ")))
            .send(ca.path, ["via a CSR"])
        #expect(reply.status == 0 && reply.stdout == "via a CSR\n", "\(reply.stderr)")
    }

    @Test(
        "ca sign refuses names the kind does not allow, a tampered request and a CA request; OpenSSL's CSRs are signed",
        .enabled(if: Tools.enabled("openssl"), "needs openssl"))
    func policy() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.ok(["ca", "init", "--dir", dir.path, "--name", "Barry"])
        try await CLI.ok([
            "cert", "request", "--name", "web", "--dns", "web.example", "--key-out", dir.file("web.key"),
            "--csr-out", dir.file("web.csr"),
        ])
        let asClient = try await CLI.run([
            "ca", "sign", "--dir", dir.path, "--csr", dir.file("web.csr"), "--kind", "client",
        ])
        #expect(
            asClient.status == 1
                && asClient.stderr.contains("a client certificate may not carry the name DNS:web.example"),
            "\(asClient.stderr)")

        // One changed byte in the signed part: the self-signature no longer verifies.
        let pem = String(decoding: try SecureFile.read(dir.file("web.csr")), as: UTF8.self)
        let base64 = pem.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
        var der = [UInt8](try #require(Data(base64Encoded: base64)))
        let name = Array("web.example".utf8)
        let at = try #require((0...(der.count - name.count)).first { Array(der[$0..<($0 + name.count)]) == name })
        der[at] = UInt8(ascii: "x")  // xeb.example
        try SecureFile.write(der, to: dir.file("tampered.csr"), mode: 0o644)
        let tampered = try await CLI.run([
            "ca", "sign", "--dir", dir.path, "--csr", dir.file("tampered.csr"), "--kind", "server",
        ])
        #expect(tampered.status == 1 && tampered.stderr.contains("signature does not verify"), "\(tampered.stderr)")

        let openssl = try Tools.require("openssl")
        let caRequest = try await Tools.run(
            openssl,
            [
                "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                dir.file("evil.key"),
                "-out", dir.file("evil.csr"), "-subj", "/CN=evil", "-addext", "subjectAltName=DNS:evil.example",
                "-addext", "basicConstraints=critical,CA:TRUE",
            ])
        #expect(caRequest.status == 0, "\(caRequest.stderr)")
        let evil = try await CLI.run([
            "ca", "sign", "--dir", dir.path, "--csr", dir.file("evil.csr"), "--kind", "server",
        ])
        #expect(evil.status == 1 && evil.stderr.contains("asks to be a CA"), "\(evil.stderr)")

        let plain = try await Tools.run(
            openssl,
            [
                "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", dir.file("o.key"), "-out", dir.file("o.csr"),
                "-subj", "/CN=ossl", "-addext", "subjectAltName=DNS:ossl.example",
            ])
        #expect(plain.status == 0, "\(plain.stderr)")
        try await CLI.ok(["ca", "sign", "--dir", dir.path, "--csr", dir.file("o.csr"), "--kind", "server"])
        let verify = try await Tools.run(
            openssl, ["verify", "-CAfile", dir.file("ca.crt"), "-purpose", "sslserver", dir.file("ossl.crt")])
        #expect(verify.status == 0 && verify.stdout.contains("OK"), "\(verify.stdout) \(verify.stderr)")
        let noSAN = try await Tools.run(
            openssl,
            [
                "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                dir.file("n.key"),
                "-out", dir.file("n.csr"), "-subj", "/CN=nameless",
            ])
        #expect(noSAN.status == 0)
        let nameless = try await CLI.run([
            "ca", "sign", "--dir", dir.path, "--csr", dir.file("n.csr"), "--kind", "server",
        ])
        #expect(
            nameless.status == 1 && nameless.stderr.contains("names no DNS name or IP address"), "\(nameless.stderr)")
    }
}
