import Crypto
import Foundation
import SwiftASN1
import X509

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Everything `cert inspect` shows about one certificate, as plain values (and JSON).
public struct CertificateDescription: Codable, Sendable, Equatable {
    /// X.509 version (1 or 3).
    public var version: Int
    /// Subject in RFC 4514 form.
    public var subject: String
    /// Issuer in RFC 4514 form.
    public var issuer: String
    /// Serial number in upper-case hex.
    public var serial: String
    /// Start of validity.
    public var notBefore: Date
    /// End of validity.
    public var notAfter: Date
    /// Whole days from now until notAfter (negative once expired).
    public var daysLeft: Int
    /// The SPIFFE ID when the certificate is an X.509-SVID (exactly one URI SAN, `spiffe://…`).
    public var spiffeID: String?
    /// Subject alternative names such as `DNS:localhost`.
    public var subjectAlternativeNames: [String]
    /// Key usage bits by name; empty when the extension is absent.
    public var keyUsage: [String]
    /// Extended key usages by name; empty when the extension is absent.
    public var extendedKeyUsage: [String]
    /// `CA:TRUE, pathlen:0`, `CA:FALSE` or nil when absent.
    public var basicConstraints: String?
    /// Key algorithm, e.g. `ECDSA P-256`.
    public var keyType: String
    /// Key size in bits.
    public var keyBits: Int
    /// Signature algorithm.
    public var signatureAlgorithm: String
    /// SHA-256 of the DER encoding, colon-separated hex.
    public var sha256Fingerprint: String
    /// SHA-256 of the SubjectPublicKeyInfo: equal to the matching private key's.
    public var publicKeySHA256: String
    /// Whether the certificate signs itself (subject equals issuer).
    public var selfIssued: Bool
    /// Problems a user should know about.
    public var warnings: [String]

    /// Describes `certificate` as seen at `now`.
    public init(_ certificate: Certificate, now: Date = Date()) throws {
        version = certificate.version == .v1 ? 1 : (certificate.version == .v3 ? 3 : 2)
        subject = certificate.subject.description
        issuer = certificate.issuer.description
        serial = SerialNumbers.hex(certificate.serialNumber)
        notBefore = certificate.notValidBefore
        notAfter = certificate.notValidAfter
        daysLeft = DaysLeft.count(until: certificate.notValidAfter, now: now)
        subjectAlternativeNames = Self.alternativeNames(of: certificate)
        let uris = subjectAlternativeNames.filter { $0.hasPrefix("URI:") }.map { String($0.dropFirst(4)) }
        spiffeID = uris.count == 1 && uris[0].hasPrefix("spiffe://") ? uris[0] : nil
        keyUsage = Self.keyUsageNames(certificate.extensions)
        extendedKeyUsage = Self.extendedKeyUsageNames(certificate.extensions)
        if let constraints = try? certificate.extensions.basicConstraints {
            switch constraints {
            case .isCertificateAuthority(let pathLength):
                basicConstraints = pathLength.map { "CA:TRUE, pathlen:\($0)" } ?? "CA:TRUE"
            case .notCertificateAuthority:
                basicConstraints = "CA:FALSE"
            }
        } else {
            basicConstraints = nil
        }
        let key = certificate.publicKey.keyDescription
        keyType = key.algorithm
        keyBits = key.bits
        signatureAlgorithm = certificate.signatureAlgorithm.description.replacingOccurrences(
            of: "SignatureAlgorithm.", with: "")
        let digest = SHA256.hash(data: try CertificateIO.der(certificate))
        sha256Fingerprint = SerialNumbers.hex(digest, separator: UInt8(ascii: ":"))
        publicKeySHA256 = try certificate.publicKey.spkiSHA256()
        selfIssued = certificate.subject == certificate.issuer
        var warnings: [String] = []
        if certificate.version != .v3 {
            warnings.append(
                "X.509 v\(version) certificate without extensions: it has no subjectAltName or extendedKeyUsage, so SecureChannel will refuse it for TLS"
            )
        } else {
            if subjectAlternativeNames.isEmpty && !selfIssued {
                warnings.append("no subjectAltName: clients cannot verify it as a server certificate")
            }
            if extendedKeyUsage.isEmpty && basicConstraints != "CA:TRUE"
                && !(basicConstraints?.hasPrefix("CA:TRUE") ?? false)
            {
                warnings.append("no extendedKeyUsage: SecureChannel requires serverAuth or clientAuth")
            }
        }
        if now > notAfter { warnings.append("expired on \(Self.format(notAfter))") }
        if now < notBefore { warnings.append("not valid until \(Self.format(notBefore))") }
        self.warnings = warnings
    }

    /// ISO 8601 UTC, to the second (`2026-11-27T07:50:47Z`).
    public static func format(_ date: Date) -> String { format(date, milliseconds: false) }

    /// ISO 8601 UTC, to the second, or to the millisecond for log lines (`2026-11-27T07:50:47.123Z`).
    public static func format(_ date: Date, milliseconds: Bool) -> String {
        // By hand with gmtime_r: an ISO8601DateFormatter made per call cost a fifth of a server's CPU in its log lines
        // and 5 % of the online CA's (called per connection and per issuance); a shared one is not documented
        // thread-safe here.
        let since1970 = date.timeIntervalSince1970
        var seconds = time_t(since1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        let fraction =
            milliseconds ? "." + pad(Int32((since1970 - since1970.rounded(.down)) * 1000) % 1000, 3) : ""
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))\(fraction)Z"
    }

    /// `DNS:`, `IP:`, `email:` and `URI:` strings for the certificate's subjectAltName.
    public static func alternativeNames(of certificate: Certificate) -> [String] {
        alternativeNames(in: certificate.extensions)
    }

    /// The same for a set of extensions (a CSR's extension request).
    static func alternativeNames(in extensions: Certificate.Extensions) -> [String] {
        guard let names = try? extensions.subjectAlternativeNames else { return [] }
        return names.map(alternativeName)
    }

    /// `DNS:name`, `IP:address`, `email:address`, `URI:uri`, or `other:…`.
    static func alternativeName(_ name: GeneralName) -> String {
        switch name {
        case .dnsName(let dns): return "DNS:\(dns)"
        case .ipAddress(let octets): return "IP:\(ipString(Array(octets.bytes)))"
        case .rfc822Name(let email): return "email:\(email)"
        case .uniformResourceIdentifier(let uri): return "URI:\(uri)"
        default: return "other:\(name)"
        }
    }

    static func ipString(_ bytes: [UInt8]) -> String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        if bytes.count == 16 {
            var address = in6_addr()
            withUnsafeMutableBytes(of: &address) { $0.copyBytes(from: bytes) }
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            if inet_ntop(AF_INET6, &address, &buffer, socklen_t(buffer.count)) != nil {
                return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
        }
        return SerialNumbers.hex(bytes, separator: nil, lowercase: true)
    }

    static func keyUsageNames(_ extensions: Certificate.Extensions) -> [String] {
        guard let usage = try? extensions.keyUsage else { return [] }
        var names: [String] = []
        if usage.digitalSignature { names.append("digitalSignature") }
        if usage.nonRepudiation { names.append("nonRepudiation") }
        if usage.keyEncipherment { names.append("keyEncipherment") }
        if usage.dataEncipherment { names.append("dataEncipherment") }
        if usage.keyAgreement { names.append("keyAgreement") }
        if usage.keyCertSign { names.append("keyCertSign") }
        if usage.cRLSign { names.append("cRLSign") }
        if usage.encipherOnly { names.append("encipherOnly") }
        if usage.decipherOnly { names.append("decipherOnly") }
        return names
    }

    static func extendedKeyUsageNames(_ extensions: Certificate.Extensions) -> [String] {
        guard let usages = try? extensions.extendedKeyUsage else { return [] }
        return usages.map { usage in
            switch usage {
            case .serverAuth: return "serverAuth"
            case .clientAuth: return "clientAuth"
            case .codeSigning: return "codeSigning"
            case .emailProtection: return "emailProtection"
            case .timeStamping: return "timeStamping"
            case .ocspSigning: return "OCSPSigning"
            case .any: return "anyExtendedKeyUsage"
            default: return usage.description
            }
        }
    }
}

/// Days left until an expiry, counted one way everywhere (`ca list`, `cert inspect`, the servers' expiry warning).
public enum DaysLeft {
    /// Whole days until `date`, rounded up while it lies ahead (one with an hour left shows 1); after it, minus the
    /// whole days since (0 on the day it expired). A minute of slack absorbs the rounding of certificate times to
    /// whole seconds, so a fresh 90-day certificate shows 90, never 91.
    public static func count(until date: Date, now: Date = Date()) -> Int {
        let remaining = date.timeIntervalSince(now)
        guard remaining > 0 else { return -Int((-remaining / 86_400).rounded(.down)) }
        return max(1, Int(((remaining - 60) / 86_400).rounded(.up)))
    }

    /// `1 day`, `90 days`.
    public static func days(_ count: Int) -> String {
        count == 1 ? "1 day" : "\(count) days"
    }

    /// `90 days left`, `1 day left`, `expired today`, `expired 3 days ago`, for ``count(until:now:)``'s value
    /// (`expired` says whether the date has passed, as 0 and 1 alone cannot tell).
    public static func phrase(_ count: Int, expired: Bool) -> String {
        guard expired else { return "\(days(count)) left" }
        return count == 0 ? "expired today" : "expired \(days(-count)) ago"
    }
}
