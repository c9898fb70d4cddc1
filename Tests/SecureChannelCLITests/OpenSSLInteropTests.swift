import Foundation
import SecureChannelPKI
import TestSupport
import Testing

@Suite(
    "Interop with the openssl binary", .enabled(if: Tools.enabled("openssl"), "needs openssl (apt-get install openssl)")
)
struct OpenSSLInteropTests {
    @Test("openssl verify accepts Jill for sslserver and Chris for sslclient, refuses Chris as a server")
    func purposes() async throws {
        let openssl = try Tools.require("openssl")
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        let ca = dir.file("ca.crt")
        #expect(
            try await Tools.run(openssl, ["verify", "-CAfile", ca, "-purpose", "sslserver", dir.file("Jill.crt")])
                .status == 0)
        #expect(
            try await Tools.run(openssl, ["verify", "-CAfile", ca, "-purpose", "sslclient", dir.file("Chris.crt")])
                .status == 0)
        #expect(
            try await Tools.run(openssl, ["verify", "-CAfile", ca, "-purpose", "sslserver", dir.file("Chris.crt")])
                .status != 0)
    }

    @Test(
        "openssl s_server and s_client exchange a line over TLS 1.3 with our certificates",
        arguments: KeyType.allCases.map(\.rawValue))
    func handshake(keyType: String) async throws {
        let openssl = try Tools.require("openssl")
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path, keyType: keyType)
        let reply = try await Self.exchange(
            openssl: openssl, dir: dir, clientCert: "Chris", line: "hello jill \(keyType)")
        // s_server -rev sends each line back reversed: the reply proves the server accepted Chris after the handshake.
        #expect(reply.contains(String("hello jill \(keyType)".reversed())), "\(reply)")
    }

    @Test("s_server with -verify_return_error refuses a server certificate used as a client one")
    func wrongPurposeRefused() async throws {
        let openssl = try Tools.require("openssl")
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        let reply = try await Self.exchange(openssl: openssl, dir: dir, clientCert: "Jill", line: "sneaky")
        #expect(!reply.contains("ykaens"))
    }

    /// Runs `s_server -rev` with Jill's files and `s_client` with `clientCert`; returns what the client received.
    static func exchange(openssl: String, dir: TemporaryDirectory, clientCert: String, line: String) async throws
        -> String
    {
        let server = try RunningProcess(
            openssl,
            [
                "s_server", "-accept", "127.0.0.1:0", "-naccept", "1", "-rev", "-tls1_3",
                "-cert", dir.file("Jill.crt"), "-key", dir.file("Jill.key"),
                "-CAfile", dir.file("ca.crt"), "-Verify", "1", "-verify_return_error",
            ])
        defer { server.stop() }
        try await server.waitForOutput { $0.contains("ACCEPT") }
        let port = try #require(server.port(after: "ACCEPT"))
        let client = try RunningProcess(
            openssl,
            [
                "s_client", "-connect", "127.0.0.1:\(port)", "-servername", "localhost", "-verify_hostname",
                "localhost",
                "-CAfile", dir.file("ca.crt"), "-verify_return_error", "-tls1_3", "-quiet", "-ign_eof",
                "-cert", dir.file("\(clientCert).crt"), "-key", dir.file("\(clientCert).key"),
            ])
        defer { client.stop() }
        client.send(line + "\n")
        let reversed = String(line.reversed())
        do {
            return try await client.waitForOutput(timeout: 15) { $0.contains(reversed) }
        } catch is ProcessEnded {
            return client.output()
        }
    }

    @Test("an encrypted CA key is read by openssl pkey -passin file:")
    func encryptedKeyReadByOpenSSL() async throws {
        let openssl = try Tools.require("openssl")
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try SecureFile.write("open sesame\n", to: dir.file("pass"), mode: 0o600)
        try await CLI.ok(["ca", "init", "--dir", dir.file("pki"), "--passphrase-file", dir.file("pass")])
        let result = try await Tools.run(
            openssl, ["pkey", "-in", dir.file("pki/ca.key"), "-passin", "file:\(dir.file("pass"))", "-noout", "-text"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("NIST CURVE: P-256") || result.stdout.contains("prime256v1"))
        let params = try await Tools.run(openssl, ["asn1parse", "-in", dir.file("pki/ca.key")])
        #expect(
            params.stdout.contains("PBES2") && params.stdout.contains("PBKDF2") && params.stdout.contains("aes-256-cbc")
        )
        let wrong = try await Tools.run(
            openssl, ["pkey", "-in", dir.file("pki/ca.key"), "-passin", "pass:nope", "-noout"])
        #expect(wrong.status != 0)
    }

    @Test("cert inspect and cert verify read what OpenSSL makes")
    func readsOpenSSLFiles() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        // An OpenSSL CA, and a server certificate it signs, the way the original exercise made them.
        try await OpenSSL.run([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", dir.file("barry.key"), "-out",
            dir.file("barry.crt"),
            "-days", "30", "-subj", "/CN=Barry OpenSSL",
        ])
        try await OpenSSL.run(["ecparam", "-name", "prime256v1", "-genkey", "-out", dir.file("jill-sec1.key")])
        try await OpenSSL.run([
            "req", "-new", "-key", dir.file("jill-sec1.key"), "-subj", "/CN=Jill", "-out", dir.file("jill.csr"),
        ])
        try SecureFile.write(
            "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n",
            to: dir.file("ext.cnf"), mode: 0o644)
        try await OpenSSL.run([
            "x509", "-req", "-in", dir.file("jill.csr"), "-CA", dir.file("barry.crt"), "-CAkey", dir.file("barry.key"),
            "-days", "10", "-extfile", dir.file("ext.cnf"), "-out", dir.file("jill.crt"),
        ])
        try await OpenSSL.run(["x509", "-in", dir.file("jill.crt"), "-outform", "DER", "-out", dir.file("jill.der")])
        try await OpenSSL.run(["genrsa", "-traditional", "-out", dir.file("pkcs1.key"), "2048"])
        try await OpenSSL.run([
            "pkcs8", "-topk8", "-in", dir.file("jill-sec1.key"), "-v2", "aes-256-cbc", "-passout", "pass:pw", "-out",
            dir.file("enc.key"),
        ])
        try await OpenSSL.run([
            "pkcs8", "-topk8", "-nocrypt", "-in", dir.file("pkcs1.key"), "-out", dir.file("pkcs8.key"),
        ])
        try await OpenSSL.run(["pkey", "-in", dir.file("pkcs1.key"), "-outform", "DER", "-out", dir.file("pkcs8.der")])
        try await OpenSSL.run([
            "x509", "-req", "-in", dir.file("jill.csr"), "-signkey", dir.file("jill-sec1.key"), "-days", "5", "-out",
            dir.file("v1.crt"),
        ])
        try SecureFile.write("pw\n", to: dir.file("pw"), mode: 0o600)

        try await CLI.ok([
            "cert", "verify", "--ca", dir.file("barry.crt"), "--purpose", "server", "--host", "localhost",
            dir.file("jill.crt"),
        ])
        try await CLI.ok(["cert", "verify", "--ca", dir.file("barry.crt"), "--purpose", "server", dir.file("jill.der")])
        try await CLI.ok([
            "cert", "verify", "--ca", dir.file("barry.crt"), "--key", dir.file("jill-sec1.key"), dir.file("jill.crt"),
        ])
        try await CLI.ok([
            "cert", "verify", "--ca", dir.file("barry.crt"), "--key", dir.file("enc.key"), "--passphrase-file",
            dir.file("pw"), dir.file("jill.crt"),
        ])

        let der = try await CLI.ok(["cert", "inspect", dir.file("jill.der")])
        #expect(der.stdout.contains("CN=Jill") && der.stdout.contains("DNS:localhost"))
        let sec1 = try await CLI.ok(["cert", "inspect", dir.file("jill-sec1.key")])
        #expect(sec1.stdout.contains("SEC1") && sec1.stdout.contains("ECDSA P-256"))
        let pkcs1 = try await CLI.ok(["cert", "inspect", dir.file("pkcs1.key")])
        #expect(pkcs1.stdout.contains("PKCS#1") && pkcs1.stdout.contains("RSA (2048 bits)"))
        let pkcs8 = try await CLI.ok(["cert", "inspect", dir.file("pkcs8.key")])
        #expect(pkcs8.stdout.contains("PKCS#8") && pkcs8.stdout.contains("RSA (2048 bits)"))
        let pkcs8DER = try await CLI.ok(["cert", "inspect", dir.file("pkcs8.der")])
        #expect(pkcs8DER.stdout.contains("RSA (2048 bits)"))
        let locked = try await CLI.ok(["cert", "inspect", dir.file("enc.key")])
        #expect(locked.stdout.contains("encrypted PKCS#8") && locked.stdout.contains("--passphrase-file"))
        let unlocked = try await CLI.ok(["cert", "inspect", dir.file("enc.key"), "--passphrase-file", dir.file("pw")])
        #expect(unlocked.stdout.contains("ECDSA P-256"))
        // The key's public-key hash equals the certificate's: a visual match.
        let jill = try await CLI.ok(["cert", "inspect", "--json", dir.file("jill.crt")])
        let key = try await CLI.ok(["cert", "inspect", "--json", dir.file("jill-sec1.key")])
        let pin = { (text: String) in
            text.split(separator: "\n").first { $0.contains("publicKeySHA256") }?.split(separator: "\"")[3]
        }
        #expect(pin(jill.stdout) != nil && pin(jill.stdout) == pin(key.stdout))

        let v1 = try await CLI.ok(["cert", "inspect", dir.file("v1.crt")])
        #expect(v1.stdout.contains("v1") && v1.stdout.contains("warning") && v1.stdout.contains("refuse it for TLS"))
        let v1verify = try await CLI.run([
            "cert", "verify", "--ca", dir.file("v1.crt"), "--purpose", "server", dir.file("v1.crt"),
        ])
        #expect(v1verify.status != 0 && v1verify.stderr.contains("wrong purpose"))
    }
}
