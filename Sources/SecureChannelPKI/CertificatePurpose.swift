import SwiftASN1
import X509

/// What a leaf certificate is being verified for.
public enum CertificatePurpose: String, Sendable, CaseIterable, Codable {
    /// TLS server authentication (extendedKeyUsage serverAuth).
    case server
    /// TLS client authentication (extendedKeyUsage clientAuth).
    case client

    /// The extended key usage this purpose requires.
    public var extendedKeyUsage: ExtendedKeyUsage.Usage {
        self == .server ? .serverAuth : .clientAuth
    }

    /// Why `certificate` is not fit for this purpose, or nil if it is.
    ///
    /// SecureChannel is stricter than OpenSSL here: the EKU must be present and name the purpose.
    public func problem(with certificate: Certificate) -> String? {
        let wanted = self == .server ? "serverAuth" : "clientAuth"
        guard let usages = try? certificate.extensions.extendedKeyUsage else {
            return "wrong purpose: the certificate has no extendedKeyUsage; a \(rawValue) certificate needs \(wanted)"
        }
        guard usages.contains(extendedKeyUsage) else {
            let has = CertificateDescription.extendedKeyUsageNames(certificate.extensions).joined(separator: ", ")
            return
                "wrong purpose: the certificate is for \(has), not \(wanted) (is this a \(self == .server ? "client" : "server") certificate?)"
        }
        if let usage = try? certificate.extensions.keyUsage, !usage.digitalSignature {
            return "wrong purpose: keyUsage lacks digitalSignature, which TLS needs"
        }
        return nil
    }
}

/// A swift-certificates policy that requires the leaf to carry the EKU of a ``CertificatePurpose``.
///
/// swift-certificates' `RFC5280Policy` does not look at EKU; add this beside it.
public struct PurposePolicy: VerifierPolicy, Sendable {
    /// The purpose the leaf must serve.
    public let purpose: CertificatePurpose

    /// A policy for `purpose`.
    public init(_ purpose: CertificatePurpose) { self.purpose = purpose }

    /// The extensions this policy understands.
    public var verifyingCriticalExtensions: [ASN1ObjectIdentifier] {
        [.X509ExtensionID.extendedKeyUsage, .X509ExtensionID.keyUsage]
    }

    /// Checks the leaf's EKU and key usage.
    public func chainMeetsPolicyRequirements(chain: UnverifiedCertificateChain) async -> PolicyEvaluationResult {
        if let problem = purpose.problem(with: chain.leaf) {
            return .failsToMeetPolicy(reason: problem)
        }
        return .meetsPolicy
    }
}
