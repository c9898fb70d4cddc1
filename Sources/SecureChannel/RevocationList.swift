import Foundation
import SecureChannelPKI
import X509

/// CRLs checked against the trust anchors, used to refuse revoked peers.
///
/// A CRL signed by one of the CA certificates being trusted is verified when loaded. A CRL of an intermediate CA
/// (its issuer is not a trust anchor) is verified against the intermediate's certificate in the peer's validated
/// chain, when one is presented; one that does not verify then fails closed. So a server given the root's CRL and
/// the intermediate's refuses a revoked leaf, and every leaf of a revoked intermediate. An expired CRL (past
/// nextUpdate) is refused when loaded and, at run time, makes verification fail closed, unless `allowExpired` is
/// set.
public struct RevocationList: Sendable {
    /// The CRLs; those of the trust anchors verified at load, the intermediates' at use.
    public let crls: [CertificateRevocationList]
    /// The CRLs whose signature was verified against a trust anchor at load.
    private let anchorSigned: Set<Int>
    /// What the user should know: CRLs of CAs that are not trust anchors (checked when a peer presents that CA).
    public let notes: [String]
    /// Whether an expired CRL is still used rather than failing closed.
    public let allowExpired: Bool

    /// Checks each CRL's signature against `trust` and its expiry.
    public init(
        crls: [CertificateRevocationList], trust: TrustAnchors, allowExpired: Bool = false, now: Date = Date(),
        sources: [String]? = nil
    ) throws {
        var anchorSigned: Set<Int> = []
        var notes: [String] = []
        for (index, crl) in crls.enumerated() {
            let source = sources?[index] ?? "CRL \(index + 1)"
            if trust.certificates.contains(where: { crl.isSigned(by: $0) }) {
                anchorSigned.insert(index)
            } else if trust.certificates.contains(where: { $0.subject == crl.issuer }) {
                throw SecureChannelError(
                    .configuration,
                    "\(source): its signature does not verify against the CA (\(crl.issuer)); use the CRL this CA published"
                )
            } else {
                notes.append(
                    "\(source) is the CRL of \(crl.issuer), which is not a trusted CA itself: it is checked against that intermediate's certificate when a peer presents it, and a peer it does not verify for is refused"
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
        self.anchorSigned = anchorSigned
        self.notes = notes
        self.allowExpired = allowExpired
    }

    /// Reads and checks CRL files (PEM or DER).
    public static func load(files: [String], trust: TrustAnchors, allowExpired: Bool = false) throws -> RevocationList {
        let crls = try files.map { try CertificateRevocationList.load(try SecureFile.read($0), source: $0) }
        return try RevocationList(crls: crls, trust: trust, allowExpired: allowExpired, sources: files)
    }

    /// Why `certificate` must be refused (revoked, or no usable CRL), or nil if it may pass.
    public func problem(with certificate: Certificate, now: Date = Date()) -> String? {
        problem(withChain: [certificate], now: now)
    }

    /// Why a validated chain (leaf first, then its intermediates, the root last or absent) must be refused: the
    /// leaf or any intermediate revoked, or a CRL that is expired or does not verify against its issuer.
    public func problem(withChain chain: [Certificate], now: Date = Date()) -> String? {
        for (position, certificate) in chain.enumerated() where certificate.subject != certificate.issuer {
            let issuer = position + 1 < chain.count ? chain[position + 1] : nil
            if let problem = problem(with: certificate, issuedBy: issuer, now: now) {
                return position == 0 ? problem : "its issuing CA \(certificate.subject) is \(problem)"
            }
        }
        return nil
    }

    private func problem(with certificate: Certificate, issuedBy issuer: Certificate?, now: Date) -> String? {
        for (index, crl) in crls.enumerated() where crl.issuer == certificate.issuer {
            if !anchorSigned.contains(index) {
                guard let issuer, crl.isSigned(by: issuer) else {
                    return
                        "not checkable: the CRL of \(crl.issuer) does not verify against that CA's certificate; refusing"
                }
            }
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
