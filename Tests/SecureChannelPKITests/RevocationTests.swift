import Foundation
import TestSupport
import Testing
import X509

@testable import SecureChannelPKI

@Suite("Revocation: CRLs, revoke, renew")
struct RevocationTests {
    @Test(
        "a signed CRL parses back with its number, AKI, dates, entries and reasons, for every key type",
        arguments: KeyType.allCases)
    func roundTrip(keyType: KeyType) throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let ca = try CertificateAuthority.create(directory: dir.path, keyType: keyType)
        let chris = try ca.issue(.client(name: "Chris"))
        let eve = try ca.issue(.client(name: "Eve"))
        let revoked = try ca.revoke(name: "Eve", reason: .keyCompromise)
        #expect(revoked.map(\.serial) == [eve.serial])
        let crl = try CertificateRevocationList.load(try SecureFile.read(dir.file("crl.pem")), source: "crl.pem")
        #expect(crl.isSigned(by: ca.certificate))
        #expect(crl.issuer == ca.certificate.subject)
        #expect(crl.number == "01")
        #expect(crl.authorityKeyIdentifier != nil)
        #expect(!crl.isExpired())
        #expect(crl.isExpired(at: Date() + 8 * 86_400))
        #expect(crl.entries.count == 1)
        #expect(crl.entries.first?.reason == .keyCompromise)
        #expect(crl.entry(for: eve.certificate) != nil)
        #expect(crl.entry(for: chris.certificate) == nil)
        // Another CA's key does not verify it.
        let other = try TemporaryDirectory()
        defer { other.cleanup() }
        #expect(!crl.isSigned(by: try CertificateAuthority.create(directory: other.path).certificate))
        // The next CRL has the next number, and the inventory shows the status.
        let next = try ca.generateCRL(der: true, days: 30)
        #expect(next.number == "02")
        #expect(
            try CertificateRevocationList.load(try SecureFile.read(dir.file("crl.pem")), source: "der").number == "02")
        let statuses = try ca.store.certificates().map { $0.status(at: Date()) }
        #expect(statuses == [.valid, .revoked])
    }

    @Test("revoke by serial, refuse unknown names and double revocation")
    func revokeErrors() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let ca = try CertificateAuthority.create(directory: dir.path)
        let chris = try ca.issue(.client(name: "Chris"))
        #expect(try ca.revoke(serial: chris.serial.lowercased()).count == 1)
        #expect(throws: PKIError.self) { try ca.revoke(serial: chris.serial) }
        let unknown = #expect(throws: PKIError.self) { try ca.revoke(name: "Nobody") }
        #expect(unknown?.code == .notFound)
        #expect(throws: PKIError.self) { try RevocationReason(parsing: "because") }
    }

    @Test(
        "a network issuance renewing a certificate revoked after its checks is refused by the statement that would record it; the store is unchanged"
    )
    func renewalRacingRevocation() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let ca = try CertificateAuthority.create(directory: dir.path)
        let chris = try ca.issue(.client(name: "Chris"))
        let jill = try ca.issue(.client(name: "Jill"))
        _ = try ca.revoke(serial: chris.serial)
        let before = try ca.store.certificates().count
        // What `reenroll` does once its checks passed: the revocation landed between them and the record.
        let key = try KeyType.default.generate()
        let refused = #expect(throws: PKIError.self) {
            try ca.issue(
                .client(name: "Chris"), publicKey: key.publicKey, key: nil, prefix: nil, replace: false,
                renewing: chris.serial, now: Date())
        }
        #expect(refused?.code == .renewalRefused)
        #expect(refused?.message.contains("\(chris.serial) (Chris) was revoked") == true)
        #expect(try ca.store.certificates().count == before)
        // The same call for a certificate that was not revoked is recorded, with no file written.
        let renewed = try ca.issue(
            .client(name: "Jill"), publicKey: key.publicKey, key: nil, prefix: nil, replace: false,
            renewing: jill.serial, now: Date())
        #expect(try ca.store.certificates().count == before + 1)
        #expect(renewed.certificatePath.isEmpty)
        #expect(try ca.store.certificatePEM(serial: renewed.serial, directory: dir.path).contains("BEGIN CERTIFICATE"))
    }

    @Test("renew issues a new certificate in place, with a new key unless asked to keep it")
    func renew() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let ca = try CertificateAuthority.create(directory: dir.path)
        let first = try ca.issue(.server(name: "Jill", dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"]))
        let renewed = try ca.renew(name: "Jill")
        #expect(renewed.serial != first.serial)
        #expect(renewed.certificate.publicKey != first.certificate.publicKey)
        #expect(CertificateDescription.alternativeNames(of: renewed.certificate) == ["DNS:localhost", "IP:127.0.0.1"])
        let onDisk = try CertificateIO.parseCertificates(try SecureFile.read(dir.file("Jill.crt")), source: "Jill.crt")[
            0]
        #expect(onDisk == renewed.certificate)
        #expect(
            try PrivateKeyIO.parse(try SecureFile.read(dir.file("Jill.key")), source: "key").publicKey
                == onDisk.publicKey)
        #expect(try SecureFile.mode(of: dir.file("Jill.key")) == 0o600)
        let same = try ca.renew(name: "Jill", reuseKey: true)
        #expect(same.certificate.publicKey == renewed.certificate.publicKey)
        #expect(try ca.store.count() == 3)
    }
}
