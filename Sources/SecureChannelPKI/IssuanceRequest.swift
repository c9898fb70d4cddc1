import Foundation
import SwiftASN1
import X509

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What to put in a new leaf certificate. Validated before any key is generated or file written.
public struct IssuanceRequest: Sendable {
    /// Server or client.
    public var kind: CertificateKind
    /// The subject's common name.
    public var name: String
    /// DNS names for the subjectAltName (server certificates need at least one DNS name or IP).
    public var dnsNames: [String]
    /// IP addresses (v4 or v6) for the subjectAltName.
    public var ipAddresses: [String]
    /// E-mail addresses for the subjectAltName (client certificates).
    public var emails: [String]
    /// URIs for the subjectAltName, e.g. SPIFFE IDs (client certificates).
    public var uris: [String]
    /// Validity in days. Defaults to 90.
    public var days: Int
    /// Key type of the new key.
    public var keyType: KeyType
    /// Exact validity in seconds, in place of `days` (the hours-long certificates of enrollment and renewal).
    public var lifetime: TimeInterval? = nil

    /// Default leaf validity: 90 days, Mozilla's "modern" cap for server certificates.
    public static let defaultDays = 90
    /// Longest validity accepted for any certificate (100 years).
    public static let maximumDays = 36_500

    /// A request for a server certificate.
    public static func server(
        name: String, dnsNames: [String] = [], ipAddresses: [String] = [], days: Int = defaultDays,
        keyType: KeyType = .default
    ) -> IssuanceRequest {
        IssuanceRequest(
            kind: .server, name: name, dnsNames: dnsNames, ipAddresses: ipAddresses, emails: [], uris: [],
            days: days, keyType: keyType)
    }

    /// A request for a client certificate.
    public static func client(
        name: String, emails: [String] = [], uris: [String] = [], days: Int = defaultDays, keyType: KeyType = .default
    ) -> IssuanceRequest {
        IssuanceRequest(
            kind: .client, name: name, dnsNames: [], ipAddresses: [], emails: emails, uris: uris,
            days: days, keyType: keyType)
    }

    /// A request for an X.509-SVID: `spiffeID` as the only URI SAN, optional DNS and IP names; the name (CN and file
    /// prefix) defaults to the ID's last path segment.
    public static func workload(
        spiffeID: String, name: String? = nil, dnsNames: [String] = [], ipAddresses: [String] = [],
        days: Int = defaultDays, keyType: KeyType = .default
    ) -> IssuanceRequest {
        let last = spiffeID.split(separator: "/").last.map(String.init) ?? spiffeID
        return IssuanceRequest(
            kind: .workload, name: name ?? last, dnsNames: dnsNames, ipAddresses: ipAddresses, emails: [],
            uris: [spiffeID], days: days, keyType: keyType)
    }

    /// Checks a SPIFFE ID as the SPIFFE ID specification defines it: `spiffe://TRUST-DOMAIN/PATH`, the trust domain
    /// lower-case letters, digits, `.`, `-` and `_`, no port or user info; path segments non-empty, not `.` or
    /// `..`, of letters, digits, `.`, `-` and `_`; no query or fragment; at most 2048 bytes.
    public static func validateSPIFFEID(_ id: String) throws {
        func fail(_ why: String) -> PKIError {
            PKIError.invalidArgument("'\(id)' is not a SPIFFE ID: \(why) (form: spiffe://example.org/ns/web)")
        }
        guard id.utf8.count <= 2048 else { throw fail("longer than 2048 bytes") }
        guard id.hasPrefix("spiffe://") else { throw fail("the scheme must be spiffe:// (lower case)") }
        let rest = id.dropFirst("spiffe://".count)
        let domain = rest.prefix { $0 != "/" }
        let path = rest.dropFirst(domain.count)
        guard !domain.isEmpty else { throw fail("the trust domain is missing") }
        let domainCharacters = Set("abcdefghijklmnopqrstuvwxyz0123456789.-_")
        guard domain.allSatisfy(domainCharacters.contains) else {
            throw fail("the trust domain may hold only lower-case letters, digits, '.', '-' and '_' (no port, no user)")
        }
        guard !path.isEmpty, path != "/" else { throw fail("a workload's ID needs a path after the trust domain") }
        let segmentCharacters = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")
        for segment in path.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
            guard !segment.isEmpty else { throw fail("empty path segment (// or a trailing /)") }
            guard segment != "." && segment != ".." else { throw fail("'.' and '..' are not path segments here") }
            guard segment.allSatisfy(segmentCharacters.contains) else {
                throw fail("path segments hold only letters, digits, '.', '-' and '_' (no query or fragment)")
            }
        }
    }

    /// Checks every field, throwing the first problem as a one-line ``PKIError``.
    public func validate() throws {
        try Self.validateName(name)
        try Self.validateDays(days)
        for dns in dnsNames { try Self.validateDNSName(dns) }
        for ip in ipAddresses { _ = try Self.ipBytes(ip) }
        for email in emails { try Self.validateEmail(email) }
        for uri in uris { try Self.validateURI(uri) }
        if kind == .server && dnsNames.isEmpty && ipAddresses.isEmpty {
            throw PKIError.invalidArgument(
                "a server certificate needs at least one --dns HOST or --ip ADDR: clients verify the server by these names"
            )
        }
        if kind == .workload {
            guard uris.count == 1, emails.isEmpty else {
                throw PKIError.invalidArgument(
                    "an X.509-SVID carries exactly one URI name, its SPIFFE ID, and no e-mail address (got \(uris.count) URIs)"
                )
            }
            try Self.validateSPIFFEID(uris[0])
        }
    }

    /// The subjectAltName entries.
    func generalNames() throws -> [GeneralName] {
        var names: [GeneralName] = []
        names += dnsNames.map { .dnsName($0.lowercased()) }
        names += try ipAddresses.map { .ipAddress(ASN1OctetString(contentBytes: try Self.ipBytes($0)[...])) }
        names += emails.map { .rfc822Name($0) }
        names += uris.map { .uniformResourceIdentifier($0) }
        return names
    }

    static func validateName(_ name: String) throws {
        guard !name.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw PKIError.invalidArgument("--name is empty; give the subject's name, e.g. --name Jill")
        }
        guard name.count <= 64 else {
            throw PKIError.invalidArgument("--name is \(name.count) characters; a common name holds at most 64")
        }
        guard !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw PKIError.invalidArgument("--name contains control characters; use printable text")
        }
    }

    static func validateDays(_ days: Int) throws {
        guard days > 0 else {
            throw PKIError.invalidArgument("--days must be a positive number of days (got \(days))")
        }
        guard days <= maximumDays else {
            throw PKIError.invalidArgument("--days \(days) is more than \(maximumDays); choose a shorter validity")
        }
    }

    /// Accepts LDH host names (RFC 1123) and a single leading wildcard label.
    public static func validateDNSName(_ name: String) throws {
        let bad = { (why: String) in PKIError.invalidArgument("invalid DNS name '\(name)': \(why)") }
        if (try? ipBytes(name)) != nil {
            throw PKIError.invalidArgument("'\(name)' is an IP address; pass it with --ip instead of --dns")
        }
        var host = name.lowercased()
        if host.hasSuffix(".") { host.removeLast() }
        guard !host.isEmpty else { throw bad("it is empty") }
        guard host.utf8.count <= 253 else { throw bad("longer than 253 characters") }
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        for (index, label) in labels.enumerated() {
            if label == "*" {
                guard index == 0, labels.count >= 3 else {
                    throw bad("a wildcard must be the whole leftmost label of a name with at least two more labels")
                }
                continue
            }
            guard !label.isEmpty else { throw bad("it has an empty label") }
            guard label.utf8.count <= 63 else { throw bad("label '\(label)' is longer than 63 characters") }
            guard
                label.utf8.allSatisfy({
                    $0 == UInt8(ascii: "-") || ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x7A)
                })
            else { throw bad("use letters, digits and hyphens only (internationalised names in their xn-- form)") }
            guard label.first != "-", label.last != "-" else { throw bad("a label cannot start or end with a hyphen") }
        }
    }

    /// The 4 or 16 network-order bytes of an IP address, or an error saying it is not one.
    public static func ipBytes(_ text: String) throws -> [UInt8] {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        throw PKIError.invalidArgument("invalid IP address '\(text)'; use dotted IPv4 (127.0.0.1) or IPv6 (::1)")
    }

    static func validateEmail(_ email: String) throws {
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty, !email.contains(where: { $0.isWhitespace }),
            email.allSatisfy({ $0.isASCII })
        else {
            throw PKIError.invalidArgument("invalid e-mail address '\(email)'; use the form user@example.com")
        }
    }

    static func validateURI(_ uri: String) throws {
        guard let url = URL(string: uri), let scheme = url.scheme, !scheme.isEmpty,
            !uri.contains(where: { $0.isWhitespace })
        else {
            throw PKIError.invalidArgument(
                "invalid URI '\(uri)'; use an absolute URI such as spiffe://example.org/chris")
        }
    }
}
