import Foundation
@_spi(FixedExpiryValidationTime) import X509

/// Verifies a certificate against a set of CA certificates and says precisely why it fails.
public enum CertificateVerification {
    /// Why verification failed.
    public enum Reason: String, Sendable, Codable {
        /// Past notAfter.
        case expired
        /// Before notBefore.
        case notYetValid = "not-yet-valid"
        /// No CA certificate matches its issuer.
        case unknownIssuer = "unknown-issuer"
        /// The EKU does not allow the requested purpose.
        case wrongPurpose = "wrong-purpose"
        /// The requested host name is not among its names.
        case nameMismatch = "name-mismatch"
        /// The issuer's key does not verify the signature.
        case badSignature = "bad-signature"
        /// Another RFC 5280 rule failed (for example the CA itself expired or is not a CA).
        case invalidChain = "invalid-chain"
    }

    /// A verification failure: a reason code and a one-line explanation.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        /// The reason code.
        public var reason: Reason
        /// A one-line explanation.
        public var message: String
        /// The explanation.
        public var description: String { message }
    }

    /// Verifies `chain` (leaf first, then any intermediates) against `roots`.
    ///
    /// - Parameters:
    ///   - purpose: if set, the leaf must carry that extendedKeyUsage.
    ///   - host: if set, the leaf must name it (a DNS name or, for an IP literal, an IP SAN). Strict: nothing else
    ///     matches, not the connection's address.
    ///   - time: the verification time, an input so that tests are deterministic.
    /// - Returns: the validated chain, leaf first.
    @discardableResult
    public static func verify(
        chain: [Certificate], roots: [Certificate], purpose: CertificatePurpose? = nil, host: String? = nil,
        at time: Date = Date()
    ) async throws(Failure) -> [Certificate] {
        guard let leaf = chain.first else { throw Failure(reason: .invalidChain, message: "no certificate given") }
        let intermediates = Array(chain.dropFirst())
        let candidates = (roots + intermediates).filter { $0.subject == leaf.issuer }
        if candidates.isEmpty && !roots.contains(leaf) {
            throw Failure(
                reason: .unknownIssuer,
                message: "unknown issuer: \(leaf.issuer) is not among the CA certificates given; check --ca")
        }
        if time > leaf.notValidAfter {
            throw Failure(
                reason: .expired,
                message: "expired on \(CertificateDescription.format(leaf.notValidAfter)); issue a new certificate")
        }
        if time < leaf.notValidBefore {
            throw Failure(
                reason: .notYetValid,
                message:
                    "not yet valid: valid from \(CertificateDescription.format(leaf.notValidBefore)); check the clocks")
        }
        if let purpose, let problem = purpose.problem(with: leaf) {
            throw Failure(reason: .wrongPurpose, message: problem)
        }
        // One validation does all the public-key work (this runs once per handshake); only a failure pays for
        // the extra runs that name the reason precisely.
        let isIP = host.map { (try? IssuanceRequest.ipBytes($0)) != nil } ?? false
        var verifier = Verifier(rootCertificates: CertificateStore(roots)) {
            RFC5280Policy(fixedExpiryValidationTime: time)
            if let purpose { PurposePolicy(purpose) }
            if let host { ServerIdentityPolicy(serverHostname: isIP ? nil : host, serverIP: isIP ? host : nil) }
        }
        let intermediateStore = CertificateStore(intermediates)
        if case .validCertificate(let chain) = await verifier.validate(leaf: leaf, intermediates: intermediateStore) {
            return Array(chain)
        }
        if !roots.contains(leaf)
            && !candidates.contains(where: { $0.publicKey.isValidSignature(leaf.signature, for: leaf) })
        {
            throw Failure(
                reason: .badSignature,
                message:
                    "bad signature: the CA named \(leaf.issuer) did not sign this certificate (altered, or signed by another key with the same name)"
            )
        }
        var withoutName = Verifier(rootCertificates: CertificateStore(roots)) {
            RFC5280Policy(fixedExpiryValidationTime: time)
            if let purpose { PurposePolicy(purpose) }
        }
        switch await withoutName.validate(leaf: leaf, intermediates: intermediateStore) {
        case .validCertificate:
            // Everything but the name holds, so the name is what failed.
            let names = CertificateDescription.alternativeNames(of: leaf)
            throw Failure(
                reason: .nameMismatch,
                message:
                    "name mismatch: the certificate is for \(names.isEmpty ? "no names" : names.joined(separator: ", ")), not \(host ?? "")"
            )
        case .couldNotValidate(let failures):
            let reasons = failures.map { "\($0.policyFailureReason)" }
            throw Failure(
                reason: .invalidChain,
                message: "invalid chain: "
                    + (reasons.isEmpty
                        ? "no path to a trusted CA (unhandled critical extension?)" : reasons.joined(separator: "; ")))
        }
    }
}
