import Foundation
import SwiftASN1
import X509

/// Certificate signing requests (PKCS#10): made where the key lives (`securechannel cert request`), signed by the
/// CA elsewhere (`securechannel ca sign`), so that private keys never leave the machine that uses them.
public enum CertificateRequest {
    /// A new key and a CSR for it: subject `CN=name`, and the names asked for as a subjectAltName extension request.
    public static func make(
        name: String, dnsNames: [String] = [], ipAddresses: [String] = [], emails: [String] = [],
        uris: [String] = [], keyType: KeyType = .default
    ) throws -> (key: Certificate.PrivateKey, csr: CertificateSigningRequest) {
        // The same checks as for issuance (kind-neutral here: the CA applies the kind's policy when it signs).
        let names = IssuanceRequest(
            kind: .client, name: name, dnsNames: dnsNames, ipAddresses: ipAddresses, emails: emails,
            uris: uris, days: IssuanceRequest.defaultDays, keyType: keyType)
        try names.validate()
        let key = try keyType.generate()
        var attributes = CertificateSigningRequest.Attributes()
        let generalNames = try names.generalNames()
        if !generalNames.isEmpty {
            let extensions = try Certificate.Extensions { SubjectAlternativeNames(generalNames) }
            attributes.insert(try .init(ExtensionRequest(extensions: extensions)))
        }
        let csr = try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { CommonName(name) }, privateKey: key, attributes: attributes,
            signatureAlgorithm: key.preferredSignatureAlgorithm)
        return (key, csr)
    }

    /// The CSR as PEM (`-----BEGIN CERTIFICATE REQUEST-----`).
    public static func pem(_ csr: CertificateSigningRequest) throws -> String {
        try csr.serializeAsPEM().pemString + "\n"
    }

    /// Reads a CSR (PEM or DER) and checks its self-signature: whoever made it holds the private key.
    public static func parse(_ bytes: [UInt8], source: String) throws -> CertificateSigningRequest {
        let der: [UInt8]
        if let documents = try PEMFile.documents(bytes, source: source) {
            guard
                let document = documents.first(where: {
                    $0.discriminator == "CERTIFICATE REQUEST" || $0.discriminator == "NEW CERTIFICATE REQUEST"
                })
            else {
                let found = documents.map(\.discriminator).joined(separator: ", ")
                throw PKIError.malformed(
                    "\(source) holds no certificate request (found: \(found)); make one with 'securechannel cert request'"
                )
            }
            der = document.derBytes
        } else {
            der = bytes
        }
        let csr: CertificateSigningRequest
        do {
            csr = try CertificateSigningRequest(derEncoded: der)
        } catch {
            // swift-crypto refuses RSA keys under 2048 bits while the request is parsed.
            if "\(error)".contains("incorrectParameterSize") {
                throw PKIError.invalidArgument(
                    "\(source): its key is too weak (RSA needs 2048 bits or more); make the request with a new key, e.g. ecdsa-p256"
                )
            }
            throw PKIError.malformed("\(source) is not a readable certificate request (PKCS#10): \(error)")
        }
        guard csr.publicKey.isValidSignature(csr.signature, for: csr) else {
            throw PKIError(
                .verificationFailed,
                "\(source): the request's signature does not verify against its own key (altered, or not made with that key); make a new request"
            )
        }
        return csr
    }

    /// What a CSR asks for, checked against the kind's policy: a common name; for a server, DNS and IP names (at
    /// least one); for a client, e-mail and URI names. Anything else it asks for (another name type, a CA flag,
    /// another extended key usage) is refused rather than silently dropped.
    public static func issuanceRequest(
        for csr: CertificateSigningRequest, kind: CertificateKind, days: Int,
        source: String
    ) throws -> IssuanceRequest {
        let commonName = csr.subject.reversed().lazy.flatMap { $0 }.first { $0.type == .RDNAttributeType.commonName }
            .map { String(describing: $0.value) }
        guard let commonName = commonName ?? (kind == .workload ? "" : nil) else {
            throw PKIError.invalidArgument(
                "\(source): the request's subject has no common name (CN); make it with --name")
        }
        guard let keyType = KeyType(csr.publicKey) else {
            let key = csr.publicKey.keyDescription
            throw PKIError.invalidArgument(
                "\(source): the request's key (\(key.algorithm) \(key.bits)) is not one this CA issues for; use \(KeyType.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        guard kind != .intermediate else {
            throw PKIError.invalidArgument(
                "\(source): an intermediate CA is made with 'securechannel ca init --dir DIR --parent ROOT', not from a CSR"
            )
        }
        var request = IssuanceRequest(
            kind: kind, name: commonName, dnsNames: [], ipAddresses: [], emails: [], uris: [],
            days: days, keyType: keyType)
        let extensions: Certificate.Extensions
        do {
            extensions = try csr.attributes.extensionRequest?.extensions ?? Certificate.Extensions()
        } catch {
            throw PKIError.malformed("\(source): unreadable extension request: \(error)")
        }
        for ext in extensions {
            switch ext.oid {
            case .X509ExtensionID.subjectAlternativeName:
                for name in try SubjectAlternativeNames(ext) {
                    switch name {
                    case .dnsName(let dns) where kind != .client: request.dnsNames.append(dns)
                    case .ipAddress(let bytes) where kind != .client:
                        request.ipAddresses.append(CertificateDescription.ipString(Array(bytes.bytes)))
                    case .rfc822Name(let email) where kind == .client: request.emails.append(email)
                    case .uniformResourceIdentifier(let uri) where kind != .server: request.uris.append(uri)
                    default:
                        throw PKIError.invalidArgument(
                            "\(source): a \(kind.rawValue) certificate may not carry the name \(CertificateDescription.alternativeName(name)) (server: DNS and IP names; client: e-mail and URI names; workload: one SPIFFE ID, DNS and IP names)"
                        )
                    }
                }
            case .X509ExtensionID.basicConstraints:
                if case .isCertificateAuthority = try BasicConstraints(ext) {
                    throw PKIError.invalidArgument(
                        "\(source): the request asks to be a CA; this CA issues leaf certificates only")
                }
            case .X509ExtensionID.extendedKeyUsage:
                let wanted: [ExtendedKeyUsage.Usage] =
                    switch kind {
                    case .server: [.serverAuth]
                    case .client: [.clientAuth]
                    case .workload, .intermediate: [.serverAuth, .clientAuth]
                    }
                let usages = Array(try ExtendedKeyUsage(ext))
                guard usages.allSatisfy(wanted.contains) else {
                    throw PKIError.invalidArgument(
                        "\(source): the request asks for extended key usages \(usages) but a \(kind.rawValue) certificate carries \(wanted) only"
                    )
                }
            case .X509ExtensionID.keyUsage, .X509ExtensionID.subjectKeyIdentifier:
                break  // the CA sets these itself
            default:
                throw PKIError.invalidArgument(
                    "\(source): the request asks for an extension this CA does not issue (\(ext.oid))")
            }
        }
        if kind == .workload && request.name.isEmpty {
            // An SVID request need not have a CN: name it after its SPIFFE ID's last path segment.
            request.name = request.uris.first?.split(separator: "/").last.map(String.init) ?? ""
        }
        if kind == .workload && request.uris.count != 1 {
            throw PKIError.invalidArgument(
                "\(source): an X.509-SVID request carries exactly one URI name, its SPIFFE ID (found \(request.uris.count)); make it with 'cert request --uri spiffe://…'"
            )
        }
        if kind == .server && request.dnsNames.isEmpty && request.ipAddresses.isEmpty {
            throw PKIError.invalidArgument(
                "\(source): the request names no DNS name or IP address, which a server certificate needs (make it with 'cert request --dns HOST' or '--ip ADDR')"
            )
        }
        try request.validate()
        return request
    }
}

extension CertificateAuthority {
    /// Issues a certificate for the key in a CSR (see ``CertificateRequest/issuanceRequest(for:kind:days:source:)``
    /// for the policy) and writes `PREFIX.crt` (default: `DIR/NAME.crt`); no key file: the key stays where the CSR
    /// was made. Recorded in the inventory like any other certificate.
    public func sign(
        csrFile: String, kind: CertificateKind, days: Int = IssuanceRequest.defaultDays, outPrefix: String? = nil,
        now: Date = Date()
    ) throws -> IssuedCertificate {
        let csr = try CertificateRequest.parse(try SecureFile.read(csrFile), source: csrFile)
        let request = try CertificateRequest.issuanceRequest(for: csr, kind: kind, days: days, source: csrFile)
        let prefix = try outPrefix ?? defaultPrefix(for: request.name)
        return try issue(request, publicKey: csr.publicKey, key: nil, prefix: prefix, replace: false, now: now)
    }
}
