import Foundation
import SecureChannelPKI
import TestSupport
import Testing
import X509

@Suite("Keys, passphrases and files")
struct KeyAndFileTests {
    @Test("an encrypted CA key needs the right passphrase; without it the error says how to give one")
    func encryptedCA() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let secret = Array("correct horse battery staple".utf8)
        _ = try CertificateAuthority.create(directory: dir.path, passphrase: secret)
        let pem = try String(contentsOfFile: dir.file("ca.key"), encoding: .utf8)
        #expect(pem.hasPrefix("-----BEGIN ENCRYPTED PRIVATE KEY-----"))
        #expect(try SecureFile.mode(of: dir.file("ca.key")) == 0o600)

        let missing = #expect(throws: PKIError.self) { try CertificateAuthority.open(directory: dir.path) }
        #expect(missing?.code == .passphraseRequired)
        #expect(missing?.message.contains("--passphrase-file") == true)

        let wrong = #expect(throws: PKIError.self) {
            try CertificateAuthority.open(directory: dir.path, passphrase: Array("wrong".utf8))
        }
        #expect(wrong?.code == .wrongPassphrase)

        let ca = try CertificateAuthority.open(directory: dir.path, passphrase: secret)
        _ = try ca.issue(.client(name: "Chris"))
    }

    @Test("an empty passphrase is refused")
    func emptyPassphrase() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        #expect(throws: PKIError.self) { try CertificateAuthority.create(directory: dir.path, passphrase: []) }
        #expect(!SecureFile.exists(dir.file("ca.key")))
    }

    @Test("a CA key that does not match the CA certificate is reported")
    func keyMismatch() throws {
        let one = try TemporaryDirectory()
        let two = try TemporaryDirectory()
        defer {
            one.cleanup()
            two.cleanup()
        }
        _ = try CertificateAuthority.create(directory: one.path)
        _ = try CertificateAuthority.create(directory: two.path)
        try SecureFile.write(try SecureFile.read(two.file("ca.key")), to: one.file("ca.key"), mode: 0o600)
        let error = #expect(throws: PKIError.self) { try CertificateAuthority.open(directory: one.path) }
        #expect(error?.code == .keyMismatch)
        #expect(error?.message.contains("does not belong") == true)
    }

    @Test("corrupt or truncated PEM gets a clear error, never a crash")
    func corruptPEM() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        _ = try CertificateAuthority.create(directory: dir.path)
        let cert = try SecureFile.read(dir.file("ca.crt"))
        let key = try SecureFile.read(dir.file("ca.key"))
        for cut in [10, cert.count / 2, cert.count - 30] {
            let error = #expect(throws: PKIError.self) {
                try CertificateIO.parseCertificates(Array(cert.prefix(cut)), source: "cut.crt")
            }
            #expect(error?.code == .malformedInput)
        }
        for cut in [10, key.count / 2, key.count - 30] {
            #expect(throws: PKIError.self) { try PrivateKeyIO.parse(Array(key.prefix(cut)), source: "cut.key") }
        }
        var flipped = cert
        flipped[cert.count / 2] = flipped[cert.count / 2] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        // A flipped base64 character either breaks the DER or changes a signed byte; both must be caught somewhere.
        if let parsed = try? CertificateIO.parseCertificates(flipped, source: "x")[0] {
            #expect(!parsed.publicKey.isValidSignature(parsed.signature, for: parsed))
        }
        let keyAsCert = #expect(throws: PKIError.self) { try CertificateIO.parseCertificates(key, source: "ca.key") }
        #expect(keyAsCert?.message.contains("private key, not a certificate") == true)
    }

    @Test("atomic writes set the mode exactly and refuse to replace when asked")
    func atomicWrite() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.file("secret")
        try SecureFile.write("one", to: path, mode: 0o600, overwrite: false)
        #expect(try SecureFile.mode(of: path) == 0o600)
        #expect(throws: PKIError.self) { try SecureFile.write("two", to: path, mode: 0o600, overwrite: false) }
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "one")
        try SecureFile.write("three", to: path, mode: 0o644)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "three")
        #expect(try SecureFile.mode(of: path) == 0o644)
        // No temporary files are left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["secret"])
    }
}
