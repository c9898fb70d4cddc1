import Foundation
import X509

extension CertificateAuthority {
    /// File in an intermediate CA's directory holding the certificate of the CA that signed it.
    public static let parentFileName = "parent.crt"

    /// Whether this CA was signed by another (an intermediate), so that its leaves travel with its certificate.
    public var isIntermediate: Bool { certificate.subject != certificate.issuer }

    /// The path length this CA allows below it (nil: unlimited).
    var pathLength: Int? {
        if case .isCertificateAuthority(let length) = try? certificate.extensions.basicConstraints { return length }
        return 0
    }

    /// Creates an intermediate CA in `directory`, signed by this CA (the root, whose key is needed only for this
    /// and for revoking the intermediate): CA:TRUE with pathlen 0, keyCertSign and cRLSign, and name constraints
    /// when `permittedDNS` (DNS suffixes) or `permittedURIDomains` (hosts of URIs, e.g. SPIFFE trust domains) are
    /// given. The root records it in its store as kind `intermediate`, so `ca revoke --dir ROOT --serial …`
    /// puts it in the root's CRL.
    public func createIntermediate(
        directory: String, name: String, keyType: KeyType = .default, days: Int = defaultDays,
        passphrase: [UInt8]? = nil, permittedDNS: [String] = [], permittedURIDomains: [String] = [],
        store location: CAStore.Location? = nil, now: Date = Date()
    ) throws -> CertificateAuthority {
        guard let length = pathLength, length >= 1 else {
            throw PKIError(
                .invalidArgument,
                "\(self.directory) signs leaf certificates only (pathlen 0); make a root for intermediates with 'securechannel ca init --dir ROOT --intermediates'"
            )
        }
        for suffix in permittedDNS {
            try IssuanceRequest.validateDNSName(suffix.hasPrefix(".") ? String(suffix.dropFirst()) : suffix)
        }
        let parentDirectory = self.directory
        let parentCertificate = self.certificate
        let parentKey = self.privateKey
        let parentStore = self.store
        let created = try Self.create(
            directory: directory, name: name, keyType: keyType, days: days, passphrase: passphrase, store: location,
            now: now
        ) { key, subject, skid in
            // Signed by the parent, under the parent's lock, recorded in the parent's store.
            try SecureFile.withExclusiveLock("\(parentDirectory)/\(Files.lock)") {
                var serial = try SerialNumbers.random()
                while try parentStore.contains(serial: SerialNumbers.hex(serial)) {
                    serial = try SerialNumbers.random()
                }
                var notAfter = now + TimeInterval(days) * 86_400
                if notAfter > parentCertificate.notValidAfter { notAfter = parentCertificate.notValidAfter }
                let issuerKeyID =
                    try parentCertificate.extensions.subjectKeyIdentifier?.keyIdentifier
                    ?? SubjectKeyIdentifier(hash: parentCertificate.publicKey).keyIdentifier
                let certificate = try Certificate(
                    version: .v3, serialNumber: serial, publicKey: key.publicKey,
                    notValidBefore: max(now - Self.backdate, parentCertificate.notValidBefore), notValidAfter: notAfter,
                    issuer: parentCertificate.subject, subject: subject,
                    signatureAlgorithm: parentKey.preferredSignatureAlgorithm,
                    extensions: try Certificate.Extensions {
                        Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                        Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                        skid
                        AuthorityKeyIdentifier(keyIdentifier: issuerKeyID)
                        if !permittedDNS.isEmpty || !permittedURIDomains.isEmpty {
                            Critical(
                                NameConstraints(
                                    permittedDNSDomains: permittedDNS, permittedURIDomains: permittedURIDomains))
                        }
                    },
                    issuerPrivateKey: parentKey)
                let hex = SerialNumbers.hex(serial)
                let pem = try CertificateIO.pem([certificate])
                try Self.createIssuedDirectory(parentDirectory)
                try SecureFile.write(
                    pem, to: "\(parentDirectory)/\(Files.issued)/\(hex).crt", mode: SecureFile.publicMode,
                    overwrite: false)
                try parentStore.record(
                    Inventory.Entry(
                        serial: hex, kind: .intermediate, name: name, subject: certificate.subject.description,
                        subjectAlternativeNames: [], keyType: keyType.rawValue,
                        notBefore: certificate.notValidBefore, notAfter: certificate.notValidAfter,
                        certificatePath: Inventory.storedPath("\(directory)/\(Files.certificate)", in: parentDirectory),
                        keyPath: "", revocation: nil, publicKeySHA256: try certificate.publicKey.spkiSHA256()))
                return certificate
            }
        }
        try SecureFile.write(
            try CertificateIO.pem([parentCertificate]), to: "\(directory)/\(Self.parentFileName)",
            mode: SecureFile.publicMode)
        return created
    }

    /// An intermediate with name constraints issues only names inside them (a verifier would refuse the rest).
    func checkNameConstraints(_ request: IssuanceRequest) throws {
        guard let constraints = try? certificate.extensions.nameConstraints else { return }
        let dns = Array(constraints.permittedDNSDomains)
        let uriHosts = Array(constraints.permittedURIDomains)
        func within(_ name: String, _ permitted: String) -> Bool {
            let name = name.lowercased()
            let permitted = permitted.lowercased()
            if permitted.hasPrefix(".") { return name.hasSuffix(permitted) }
            return name == permitted || name.hasSuffix("." + permitted)
        }
        if !dns.isEmpty {
            for name in request.dnsNames where !dns.contains(where: { within(name, $0) }) {
                throw PKIError(
                    .invalidArgument,
                    "\(name) is outside this CA's name constraints (DNS: \(dns.joined(separator: ", "))); verifiers would refuse the certificate"
                )
            }
        }
        if !uriHosts.isEmpty {
            for uri in request.uris {
                let host =
                    uri.components(separatedBy: "://").dropFirst().first?.split(separator: "/").first
                    .map(String.init) ?? ""
                if !uriHosts.contains(where: { within(host, $0) }) {
                    throw PKIError(
                        .invalidArgument,
                        "\(uri) is outside this CA's name constraints (URI hosts: \(uriHosts.joined(separator: ", "))); verifiers would refuse the certificate"
                    )
                }
            }
        }
    }
}
