import Foundation
import SecureChannel
import SecureChannelPKI

/// The one test PKI of every test target: Barry's CA with Jill (server: localhost, 127.0.0.1) and Chris (client),
/// generated at run time in a temporary directory (or in `directory`), never committed.
public struct TestPKI: Sendable {
    /// Where the files are: `ca.crt`, `ca.key`, `Jill.crt`, `Jill.key`, `Chris.crt`, ...
    public let dir: TemporaryDirectory
    /// Barry.
    public let ca: CertificateAuthority
    /// Barry's certificate as trust anchors.
    public let trust: TrustAnchors

    /// Barry, Jill and Chris, plus a client certificate for each of `clients`; `crl.pem` (empty) when `crl`.
    public init(keyType: KeyType = .ecdsaP256, clients: [String] = [], crl: Bool = false, in directory: String? = nil)
        throws
    {
        dir = try directory.map { try TemporaryDirectory(existing: $0) } ?? TemporaryDirectory()
        ca = try CertificateAuthority.create(directory: dir.path, name: "Barry", keyType: keyType)
        trust = try TrustAnchors([ca.certificate])
        _ = try ca.issue(.server(name: "Jill", dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"], keyType: keyType))
        for name in ["Chris"] + clients { _ = try ca.issue(.client(name: name, keyType: keyType)) }
        if crl { _ = try ca.generateCRL() }
    }

    /// The identity in `NAME.crt` and `NAME.key`.
    public func identity(_ name: String) throws -> TLSIdentity {
        try TLSIdentity.load(certificateFile: dir.file("\(name).crt"), keyFile: dir.file("\(name).key"))
    }

    /// Issues another client certificate, optionally in the past (for expired ones).
    public func client(_ name: String, now: Date = Date(), days: Int = 90, uris: [String] = []) throws -> TLSIdentity {
        let issued = try ca.issue(.client(name: name, uris: uris, days: days), now: now)
        return try TLSIdentity.load(certificateFile: issued.certificatePath, keyFile: issued.keyPath)
    }

    /// `NAME`'s files with Barry's CA, and `crl.pem` when `crl` is set (Jill's by default).
    public func files(_ name: String = "Jill", crl: Bool = false) -> TLSMaterialFiles {
        TLSMaterialFiles(
            certificate: dir.file("\(name).crt"), key: dir.file("\(name).key"), ca: dir.file("ca.crt"),
            crls: crl ? [dir.file("crl.pem")] : [])
    }

    /// Removes the directory.
    public func cleanup() { dir.cleanup() }
}
