import Foundation
import SecureChannelPKI
import X509

/// CRLs checked against the trust anchors, used to refuse revoked peers.
///
/// Every CRL must be signed by one of the CA certificates being trusted. An expired CRL (past nextUpdate) is
/// refused when loaded and, at run time, makes verification fail closed, unless `allowExpired` is set.
public struct RevocationList: Sendable {
    /// The CRLs, each verified.
    public let crls: [CertificateRevocationList]
    /// Whether an expired CRL is still used rather than failing closed.
    public let allowExpired: Bool

    /// Checks each CRL's signature against `trust` and its expiry.
    public init(
        crls: [CertificateRevocationList], trust: TrustAnchors, allowExpired: Bool = false, now: Date = Date(),
        sources: [String]? = nil
    ) throws {
        for (index, crl) in crls.enumerated() {
            let source = sources?[index] ?? "CRL \(index + 1)"
            guard trust.certificates.contains(where: { crl.isSigned(by: $0) }) else {
                throw SecureChannelError(
                    .configuration,
                    "\(source): its signature does not verify against the CA (\(crl.issuer)); use the CRL this CA published"
                )
            }
            if crl.isExpired(at: now) && !allowExpired {
                throw SecureChannelError(
                    .expiredCRL,
                    "\(source) expired on \(crl.nextUpdate.map(CertificateDescription.format) ?? "?"); publish a fresh one ('securechannel ca crl') or allow expired CRLs explicitly"
                )
            }
        }
        self.crls = crls
        self.allowExpired = allowExpired
    }

    /// Reads and checks CRL files (PEM or DER).
    public static func load(files: [String], trust: TrustAnchors, allowExpired: Bool = false) throws -> RevocationList {
        let crls = try files.map { try CertificateRevocationList.load(try SecureFile.read($0), source: $0) }
        return try RevocationList(crls: crls, trust: trust, allowExpired: allowExpired, sources: files)
    }

    /// Why `certificate` must be refused (revoked, or no usable CRL), or nil if it may pass.
    public func problem(with certificate: Certificate, now: Date = Date()) -> String? {
        for crl in crls where crl.issuer == certificate.issuer {
            if crl.isExpired(at: now) && !allowExpired {
                return
                    "the CRL expired on \(crl.nextUpdate.map(CertificateDescription.format) ?? "?"); refusing until a fresh one is loaded"
            }
            if let entry = crl.entry(for: certificate) {
                return
                    "revoked: serial \(entry.serial), reason \(entry.reason?.name ?? "unspecified"), on \(CertificateDescription.format(entry.revocationDate))"
            }
        }
        return nil
    }
}
