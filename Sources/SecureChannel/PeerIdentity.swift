import Foundation
import SecureChannelPKI
import X509

/// Who is on the other end, as proven by a verified certificate.
public struct PeerIdentity: Sendable, Hashable, CustomStringConvertible, Codable {
    /// The subject's last common name, if any.
    public var commonName: String?
    /// The subject in RFC 4514 form.
    public var subject: String
    /// DNS names from the subjectAltName.
    public var dnsNames: [String]
    /// IP addresses from the subjectAltName.
    public var ipAddresses: [String]
    /// E-mail addresses from the subjectAltName.
    public var emails: [String]
    /// URIs from the subjectAltName (e.g. SPIFFE IDs).
    public var uris: [String]
    /// Organizational units of the subject, in order.
    public var organizationalUnits: [String]
    /// The SPIFFE ID when the certificate is an X.509-SVID (exactly one URI SAN, and it is `spiffe://…`).
    public var spiffeID: String?
    /// SHA-256 of the public key (SubjectPublicKeyInfo), 64 upper-case hex digits: what `--allow-spki-sha256` pins.
    public var publicKeySHA256: String
    /// Serial number, upper-case hex.
    public var serial: String
    /// The issuer in RFC 4514 form.
    public var issuer: String
    /// End of validity.
    public var notAfter: Date

    /// No identity: the load generator's plaintext connections, where nothing is authenticated.
    package static let unauthenticated = PeerIdentity(subject: "(plaintext: not authenticated)")

    private init(subject: String) {
        self.subject = subject
        issuer = ""
        serial = ""
        notAfter = .distantPast
        dnsNames = []
        ipAddresses = []
        emails = []
        uris = []
        organizationalUnits = []
        publicKeySHA256 = ""
    }

    /// Extracts the identity from a (verified) leaf certificate.
    public init(certificate: Certificate) {
        subject = certificate.subject.description
        issuer = certificate.issuer.description
        serial = SerialNumbers.hex(certificate.serialNumber)
        notAfter = certificate.notValidAfter
        commonName = certificate.subject.reversed().lazy.flatMap { $0 }
            .first { $0.type == .RDNAttributeType.commonName }
            .map { attribute in
                String(describing: attribute.value)
            }
        var dns: [String] = []
        var ips: [String] = []
        var mails: [String] = []
        var links: [String] = []
        for name in CertificateDescription.alternativeNames(of: certificate) {
            if name.hasPrefix("DNS:") { dns.append(String(name.dropFirst(4))) }
            if name.hasPrefix("IP:") { ips.append(String(name.dropFirst(3))) }
            if name.hasPrefix("email:") { mails.append(String(name.dropFirst(6))) }
            if name.hasPrefix("URI:") { links.append(String(name.dropFirst(4))) }
        }
        dnsNames = dns
        ipAddresses = ips
        emails = mails
        uris = links
        organizationalUnits = certificate.subject.lazy.flatMap { $0 }
            .filter { $0.type == .RDNAttributeType.organizationalUnitName }
            .map { String(describing: $0.value) }
        spiffeID = links.count == 1 && links[0].hasPrefix("spiffe://") ? links[0] : nil
        publicKeySHA256 = certificate.publicKey.spkiSHA256Hex
    }

    /// Subject alternative names in `DNS:`/`IP:`/`email:`/`URI:` form.
    public var alternativeNames: [String] {
        dnsNames.map { "DNS:\($0)" } + ipAddresses.map { "IP:\($0)" } + emails.map { "email:\($0)" }
            + uris.map { "URI:\($0)" }
    }

    /// `CN=Chris serial=… sans=[…]`.
    public var description: String {
        var text = subject
        if !alternativeNames.isEmpty { text += " [\(alternativeNames.joined(separator: ", "))]" }
        return text + " serial \(serial)"
    }
}
