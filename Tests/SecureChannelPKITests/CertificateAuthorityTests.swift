import Foundation
import SecureChannelPKI
import SwiftASN1
import TestSupport
import Testing
import X509

@Suite("Certificate authority")
struct CertificateAuthorityTests {
    @Test("init writes a CA certificate with the required extensions and a 0600 key", arguments: KeyType.allCases)
    func initCA(keyType: KeyType) throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let ca = try CertificateAuthority.create(directory: dir.path, name: "Barry", keyType: keyType, days: 30)
        #expect(try SecureFile.mode(of: dir.file("ca.key")) == 0o600)
        let cert = try CertificateIO.parseCertificates(try SecureFile.read(dir.file("ca.crt")), source: "ca.crt")[0]
        #expect(cert == ca.certificate)
        #expect(cert.version == .v3)
        #expect(cert.subject == cert.issuer)
        #expect(cert.subject.description == "CN=Barry")
        let constraints = try #require(try cert.extensions.basicConstraints)
        #expect(constraints == .isCertificateAuthority(maxPathLength: 0))
        #expect(cert.extensions[oid: .X509ExtensionID.basicConstraints]?.critical == true)
        let usage = try #require(try cert.extensions.keyUsage)
        #expect(usage.keyCertSign && usage.cRLSign && !usage.digitalSignature)
        #expect(cert.extensions[oid: .X509ExtensionID.keyUsage]?.critical == true)
        let ski = try #require(try cert.extensions.subjectKeyIdentifier)
        let aki = try #require(try cert.extensions.authorityKeyIdentifier)
        #expect(aki.keyIdentifier == ski.keyIdentifier)
        #expect(cert.publicKey.isValidSignature(cert.signature, for: cert))
        #expect(
            [.ecdsaWithSHA256, .ecdsaWithSHA384, .ed25519, .sha256WithRSAEncryption].contains(cert.signatureAlgorithm))
        // Serial: positive, at least 64 random bits, at most 20 octets.
        let serial = cert.serialNumber.bytes
        #expect(serial.count >= 9 && serial.count <= 20)
        #expect(serial.first! & 0x80 == 0)
        // The key reads back and matches.
        let key = try PrivateKeyIO.parse(try SecureFile.read(dir.file("ca.key")), source: "ca.key")
        #expect(key.publicKey == cert.publicKey)
        let text = try String(contentsOfFile: dir.file("ca.key"), encoding: .utf8)
        #expect(text.hasPrefix("-----BEGIN PRIVATE KEY-----"))
    }

    @Test("init refuses to overwrite an existing CA and changes nothing")
    func initRefusesOverwrite() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        _ = try CertificateAuthority.create(directory: dir.path)
        let before = try SecureFile.read(dir.file("ca.key")) + SecureFile.read(dir.file("ca.crt"))
        let error = #expect(throws: PKIError.self) { try CertificateAuthority.create(directory: dir.path) }
        #expect(error?.code == .fileExists)
        #expect(error?.message.contains("already exists") == true)
        #expect(try SecureFile.read(dir.file("ca.key")) + SecureFile.read(dir.file("ca.crt")) == before)
    }

    @Test("init creates a missing directory 0700, but not a missing parent")
    func initMissingDirectory() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        _ = try CertificateAuthority.create(directory: dir.file("pki"))
        #expect(try SecureFile.mode(of: dir.file("pki")) == 0o700)
        let error = #expect(throws: PKIError.self) {
            try CertificateAuthority.create(directory: dir.file("nope/deeper"))
        }
        #expect(error?.code == .fileNotFound)
        #expect(error?.message.contains("mkdir") == true)
        #expect(!SecureFile.exists(dir.file("nope")))
    }

    @Test(
        "a server certificate has serverAuth only, its names, CA:FALSE and digitalSignature",
        arguments: KeyType.allCases)
    func issueServer(keyType: KeyType) throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let ca = try CertificateAuthority.create(directory: dir.path, name: "Barry")
        let issued = try ca.issue(
            .server(
                name: "Jill", dnsNames: ["localhost", "jill.example"], ipAddresses: ["127.0.0.1", "::1"],
                keyType: keyType))
        #expect(issued.certificatePath == dir.file("Jill.crt"))
        #expect(try SecureFile.mode(of: dir.file("Jill.key")) == 0o600)
        let cert = issued.certificate
        #expect(cert.subject.description == "CN=Jill")
        #expect(cert.issuer == ca.certificate.subject)
        #expect(try cert.extensions.basicConstraints == .notCertificateAuthority)
        #expect(Array(try #require(try cert.extensions.extendedKeyUsage)) == [.serverAuth])
        let usage = try #require(try cert.extensions.keyUsage)
        #expect(usage.digitalSignature)
        #expect(usage.keyEncipherment == keyType.isRSA)
        #expect(!usage.keyCertSign)
        #expect(
            CertificateDescription.alternativeNames(of: cert) == [
                "DNS:localhost", "DNS:jill.example", "IP:127.0.0.1", "IP:::1",
            ])
        #expect(try cert.extensions.subjectKeyIdentifier != nil)
        #expect(
            try cert.extensions.authorityKeyIdentifier?.keyIdentifier
                == ca.certificate.extensions.subjectKeyIdentifier?.keyIdentifier)
        #expect(ca.certificate.publicKey.isValidSignature(cert.signature, for: cert))
        let days = cert.notValidAfter.timeIntervalSince(Date()) / 86_400
        #expect(days > 89.9 && days <= 90.01)
        let key = try PrivateKeyIO.parse(try SecureFile.read(issued.keyPath), source: "key")
        #expect(key.publicKey == cert.publicKey)
    }

    @Test("a client certificate has clientAuth only and optional e-mail and URI names")
    func issueClient() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let ca = try CertificateAuthority.create(directory: dir.path)
        let issued = try ca.issue(
            .client(name: "Chris", emails: ["chris@example.com"], uris: ["spiffe://example.org/chris"]),
            outPrefix: dir.file("c"))
        #expect(issued.keyPath == dir.file("c.key"))
        #expect(Array(try #require(try issued.certificate.extensions.extendedKeyUsage)) == [.clientAuth])
        #expect(
            CertificateDescription.alternativeNames(of: issued.certificate) == [
                "email:chris@example.com", "URI:spiffe://example.org/chris",
            ])
        let inventory = try ca.store.certificates()
        #expect(inventory.count == 1)
        #expect(inventory[0].serial == issued.serial)
        #expect(inventory[0].kind == .client)
        #expect(SecureFile.exists(dir.file("issued/\(issued.serial).crt")))
    }

    @Test("a leaf never outlives its CA: the validity is clamped, with a warning")
    func clampToCA() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let ca = try CertificateAuthority.create(directory: dir.path, days: 10)
        let issued = try ca.issue(.client(name: "Chris", days: 365))
        #expect(issued.certificate.notValidAfter == ca.certificate.notValidAfter)
        #expect(issued.warnings.contains { $0.contains("clamped") })
    }

    @Test(
        "bad requests fail before anything is written",
        arguments: [
            (IssuanceRequest.server(name: "Jill"), "at least one --dns"),
            (IssuanceRequest.server(name: "Jill", ipAddresses: ["300.1.2.3"]), "invalid IP address"),
            (IssuanceRequest.server(name: "Jill", dnsNames: ["bad_name.example"]), "invalid DNS name"),
            (IssuanceRequest.server(name: "Jill", dnsNames: ["-x.example"]), "hyphen"),
            (IssuanceRequest.server(name: "Jill", dnsNames: ["10.0.0.1"]), "with --ip"),
            (IssuanceRequest.server(name: "Jill", dnsNames: ["localhost"], days: 0), "--days must be a positive"),
            (IssuanceRequest.client(name: "Chris", days: -3), "--days must be a positive"),
            (IssuanceRequest.client(name: "", days: 3), "--name is empty"),
            (IssuanceRequest.client(name: "Chris", emails: ["not-an-email"]), "invalid e-mail"),
            (IssuanceRequest.client(name: "a/b"), "cannot be a file name"),
        ])
    func badRequests(request: IssuanceRequest, expected: String) throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let ca = try CertificateAuthority.create(directory: dir.path)
        let before = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        let error = #expect(throws: PKIError.self) { try ca.issue(request) }
        #expect(error?.message.contains(expected) == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("\n") == false)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == before)
        #expect(try ca.store.certificates().isEmpty)
    }

    @Test("unknown key types are refused with the list of valid ones")
    func unknownKeyType() {
        let error = #expect(throws: PKIError.self) { try KeyType(parsing: "dsa-1024") }
        #expect(error?.message.contains("ecdsa-p256") == true)
    }

    @Test("issuing over existing files is refused and leaves them as they were")
    func noOverwrite() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let ca = try CertificateAuthority.create(directory: dir.path)
        _ = try ca.issue(.client(name: "Chris"))
        let before = try SecureFile.read(dir.file("Chris.key"))
        let error = #expect(throws: PKIError.self) { try ca.issue(.client(name: "Chris")) }
        #expect(error?.code == .fileExists)
        #expect(try SecureFile.read(dir.file("Chris.key")) == before)
        #expect(try ca.store.count() == 1)
    }

    @Test("concurrent issuance keeps every entry and never reuses a serial")
    func concurrentIssuance() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let ca = try CertificateAuthority.create(directory: dir.path)
        let count = 24
        try await withThrowingTaskGroup(of: String.self) { group in
            for index in 0..<count {
                group.addTask {
                    try await onOwnThread { try ca.issue(.client(name: "client-\(index)")).serial }
                }
            }
            var serials: [String] = []
            for try await serial in group { serials.append(serial) }
            #expect(Set(serials).count == count)
        }
        let inventory = try ca.store.certificates()
        #expect(inventory.count == count)
        #expect(Set(inventory.map(\.serial)).count == count)
    }
}
