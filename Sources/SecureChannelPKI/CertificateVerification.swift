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
            throw Failure(reason: .unknownIssuer,
                          message: "unknown issuer: \(leaf.issuer) is not among the CA certificates given; check --ca")
        }
        if !roots.contains(leaf) && !candidates.contains(where: { $0.publicKey.isValidSignature(leaf.signature, for: leaf) }) {
            throw Failure(reason: .badSignature,
                          message: "bad signature: the CA named \(leaf.issuer) did not sign this certificate (altered, or signed by another key with the same name)")
        }
        if time > leaf.notValidAfter {
            throw Failure(reason: .expired, message: "expired on \(CertificateDescription.format(leaf.notValidAfter)); issue a new certificate")
        }
        if time < leaf.notValidBefore {
            throw Failure(reason: .notYetValid, message: "not yet valid: valid from \(CertificateDescription.format(leaf.notValidBefore)); check the clocks")
        }
        if let purpose, let problem = purpose.problem(with: leaf) {
            throw Failure(reason: .wrongPurpose, message: problem)
        }
        var verifier = Verifier(rootCertificates: CertificateStore(roots)) {
            RFC5280Policy(fixedExpiryValidationTime: time)
            if let purpose { PurposePolicy(purpose) }
        }
        let validated: [Certificate]
        switch await verifier.validate(leaf: leaf, intermediates: CertificateStore(intermediates)) {
        case .validCertificate(let chain):
            validated = Array(chain)
        case .couldNotValidate(let failures):
            let reasons = failures.map { "\($0.policyFailureReason)" }
            throw Failure(reason: .invalidChain,
                          message: "invalid chain: " + (reasons.isEmpty ? "no path to a trusted CA (unhandled critical extension?)" : reasons.joined(separator: "; ")))
        }
        if let host {
            let isIP = (try? IssuanceRequest.ipBytes(host)) != nil
            // The chain already passed RFC 5280 above, so a failure of this run is the name alone. (RFC5280Policy
            // stays in so that the leaf's critical extensions count as handled.)
            var identity = Verifier(rootCertificates: CertificateStore(roots)) {
                RFC5280Policy(fixedExpiryValidationTime: time)
                ServerIdentityPolicy(serverHostname: isIP ? nil : host, serverIP: isIP ? host : nil)
            }
            if case .couldNotValidate = await identity.validate(leaf: leaf, intermediates: CertificateStore(intermediates)) {
                let names = CertificateDescription.alternativeNames(of: leaf)
                throw Failure(reason: .nameMismatch,
                              message: "name mismatch: the certificate is for \(names.isEmpty ? "no names" : names.joined(separator: ", ")), not \(host)")
            }
        }
        return validated
    }
}
