import SecureChannelPKI

/// Which verified clients may connect: by common name, DNS SAN, URI SAN, SPIFFE ID, e-mail, organizational unit or
/// public key; or any client the CA vouches for. A client is allowed when any one rule matches.
///
/// Patterns follow ghostunnel: in `dnsNames` a `*` stands for exactly one DNS label (`*.example.com` matches
/// `a.example.com`, not `a.b.example.com`); in `uris` and `spiffeIDs` a `*` stands for one path segment and a
/// final `**` for one or more. Scheme and authority (the trust domain) are always exact; common names, e-mail
/// addresses and OUs are exact. ``validate()`` refuses a pattern that could never match, so a server never starts
/// with a rule that silently matches nothing.
///
/// Checked after the certificate chain verified. An empty rule set refuses everyone; a server refuses to start
/// with one unless ``allowAnyClient`` is set.
public struct AccessRules: Sendable, Hashable {
    /// Allowed common names (exact match).
    public var commonNames: Set<String>
    /// Allowed DNS subjectAltNames (case-insensitive; `*` is one label).
    public var dnsNames: Set<String>
    /// Allowed URI subjectAltNames (`*` one path segment, a final `**` one or more).
    public var uris: Set<String>
    /// Allowed SPIFFE IDs (patterns as for ``uris``); the client must present an X.509-SVID: exactly one URI SAN.
    public var spiffeIDs: Set<String>
    /// Allowed e-mail subjectAltNames (exact, case-insensitive).
    public var emails: Set<String>
    /// Allowed organizational units of the subject (exact).
    public var organizationalUnits: Set<String>
    /// Allowed public keys: SHA-256 of the SubjectPublicKeyInfo, 64 hex digits (colons allowed, any case).
    public var publicKeySHA256: Set<String>
    /// Allow any client whose certificate verifies against the CA.
    public var allowAnyClient: Bool

    /// Creates rules.
    public init(
        commonNames: Set<String> = [], dnsNames: Set<String> = [], uris: Set<String> = [],
        spiffeIDs: Set<String> = [], emails: Set<String> = [], organizationalUnits: Set<String> = [],
        publicKeySHA256: Set<String> = [], allowAnyClient: Bool = false
    ) {
        self.commonNames = commonNames
        self.dnsNames = Set(dnsNames.map { $0.lowercased() })
        self.uris = uris
        self.spiffeIDs = spiffeIDs
        self.emails = Set(emails.map { $0.lowercased() })
        self.organizationalUnits = organizationalUnits
        self.publicKeySHA256 = Set(publicKeySHA256.map(Self.normalizedPin))
        self.allowAnyClient = allowAnyClient
    }

    /// Any client the CA vouches for.
    public static let anyClient = AccessRules(allowAnyClient: true)

    /// True when no rule allows anything.
    public var isEmpty: Bool {
        !allowAnyClient && commonNames.isEmpty && dnsNames.isEmpty && uris.isEmpty && spiffeIDs.isEmpty
            && emails.isEmpty && organizationalUnits.isEmpty && publicKeySHA256.isEmpty
    }

    /// Refuses rules that cannot match anything, with one line naming the flag and what to do.
    public func validate() throws {
        for name in commonNames where name.contains("*") {
            throw SecureChannelError(
                .configuration,
                "--allow-cn '\(name)': common names match exactly, so a * matches nothing; use --allow-dns or --allow-uri for wildcards"
            )
        }
        for pattern in dnsNames { try Self.checkDNSPattern(pattern) }
        // An exact URI may be anything (urn:uuid:…); only a wildcard needs SCHEME://AUTHORITY/PATH to mean something.
        for pattern in uris where pattern.contains("*") { try Self.checkURIPattern(pattern, flag: "--allow-uri") }
        try validate(flag: "--allow-spiffe-id")
        for pin in publicKeySHA256 where pin.count != 64 || !pin.allSatisfy(\.isHexDigit) {
            throw SecureChannelError(
                .configuration,
                "--allow-spki-sha256 '\(pin)': expected the SHA-256 of a public key, 64 hex digits (see 'securechannel cert inspect', Public key SHA-256)"
            )
        }
    }

    /// Checks the SPIFFE ID patterns, naming them as `flag` in the message.
    func validate(flag: String) throws {
        for pattern in spiffeIDs {
            guard pattern.hasPrefix("spiffe://") else {
                throw SecureChannelError(
                    .configuration, "\(flag) '\(pattern)': a SPIFFE ID starts with spiffe://TRUST-DOMAIN/")
            }
            try Self.checkURIPattern(pattern, flag: flag)
        }
    }

    /// Whether `identity` may connect.
    public func permits(_ identity: PeerIdentity) -> Bool { refusal(of: identity) == nil }

    /// Why `identity` may not connect (nil: it may): "is not allowed", or, when only a SPIFFE rule could have
    /// allowed it, that the certificate is not an X.509-SVID.
    public func refusal(of identity: PeerIdentity) -> String? {
        if allowAnyClient { return nil }
        if let cn = identity.commonName, commonNames.contains(cn) { return nil }
        for name in identity.dnsNames where dnsNames.contains(where: { Self.dnsMatches($0, name) }) { return nil }
        for uri in identity.uris where uris.contains(where: { Self.uriMatches($0, uri) }) { return nil }
        if identity.emails.contains(where: { emails.contains($0.lowercased()) }) { return nil }
        if identity.organizationalUnits.contains(where: organizationalUnits.contains) { return nil }
        if !publicKeySHA256.isEmpty, publicKeySHA256.contains(Self.normalizedPin(identity.publicKeySHA256)) {
            return nil
        }
        if !spiffeIDs.isEmpty {
            if let id = identity.spiffeID {
                if spiffeIDs.contains(where: { Self.uriMatches($0, id) }) { return nil }
            } else {
                let count = identity.uris.count
                return
                    "\(identity) is not allowed (allowed: \(summary)); it is not an X.509-SVID (\(count) URI SAN\(count == 1 ? " that is not a SPIFFE ID" : "s"); an SVID has exactly one), which --allow-spiffe-id needs"
            }
        }
        return "\(identity) is not allowed (allowed: \(summary))"
    }

    /// A short description for logs and errors.
    public var summary: String {
        if allowAnyClient { return "any client of the CA" }
        var parts: [String] = []
        parts += commonNames.sorted().map { "CN=\($0)" }
        parts += dnsNames.sorted().map { "DNS:\($0)" }
        parts += uris.sorted().map { "URI:\($0)" }
        parts += spiffeIDs.sorted().map { "SPIFFE:\($0)" }
        parts += emails.sorted().map { "email:\($0)" }
        parts += organizationalUnits.sorted().map { "OU=\($0)" }
        parts += publicKeySHA256.sorted().map { "key SHA-256 \($0.prefix(16))…" }
        return parts.isEmpty ? "nobody" : parts.joined(separator: ", ")
    }

    // MARK: Patterns

    /// Upper-case hex without colons.
    static func normalizedPin(_ text: String) -> String {
        text.replacingOccurrences(of: ":", with: "").uppercased()
    }

    static func checkDNSPattern(_ pattern: String) throws {
        let labels = pattern.split(separator: ".", omittingEmptySubsequences: false)
        for label in labels where label.contains("*") && label != "*" {
            throw SecureChannelError(
                .configuration,
                "--allow-dns '\(pattern)': a * stands for a whole label (as in *.example.com), not part of one")
        }
        if labels.contains("") {
            throw SecureChannelError(
                .configuration, "--allow-dns '\(pattern)': not a DNS name pattern (labels separated by dots, * for one)"
            )
        }
    }

    static func checkURIPattern(_ pattern: String, flag: String) throws {
        guard let (prefix, segments) = split(uri: pattern) else {
            throw SecureChannelError(
                .configuration, "\(flag) '\(pattern)': expected SCHEME://AUTHORITY/PATH, e.g. spiffe://example.org/web")
        }
        if prefix.contains("*") {
            throw SecureChannelError(
                .configuration,
                "\(flag) '\(pattern)': the scheme and authority (trust domain) must be exact; * is for path segments")
        }
        for (index, segment) in segments.enumerated() where segment.contains("*") {
            if segment == "**" && index == segments.count - 1 { continue }
            if segment == "*" { continue }
            throw SecureChannelError(
                .configuration,
                segment == "**"
                    ? "\(flag) '\(pattern)': ** stands for the rest of the path and may only come last"
                    : "\(flag) '\(pattern)': a * stands for a whole path segment, not part of one")
        }
    }

    /// `scheme://authority` and the path's segments; nil when there is no `scheme://authority`.
    static func split(uri: String) -> (String, [Substring])? {
        guard let schemeEnd = uri.range(of: "://") else { return nil }
        let rest = uri[schemeEnd.upperBound...]
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        guard slash > rest.startIndex else { return nil }
        let prefix = String(uri[..<slash])
        let path = rest[slash...].drop { $0 == "/" }
        return (prefix, path.isEmpty ? [] : path.split(separator: "/", omittingEmptySubsequences: false))
    }

    static func dnsMatches(_ pattern: String, _ name: String) -> Bool {
        let wanted = pattern.split(separator: ".", omittingEmptySubsequences: false)
        let labels = name.lowercased().split(separator: ".", omittingEmptySubsequences: false)
        guard wanted.count == labels.count else { return false }
        return zip(wanted, labels).allSatisfy { $0 == "*" ? !$1.isEmpty : $0 == $1 }
    }

    static func uriMatches(_ pattern: String, _ uri: String) -> Bool {
        guard pattern.contains("*") else { return pattern == uri }
        guard let (wantedPrefix, wanted) = split(uri: pattern), let (prefix, segments) = split(uri: uri),
            wantedPrefix == prefix
        else { return false }
        for (index, segment) in wanted.enumerated() {
            if segment == "**" { return segments.count > index && segments[index...].allSatisfy { !$0.isEmpty } }
            guard index < segments.count else { return false }
            if segment == "*" ? segments[index].isEmpty : segment != segments[index] { return false }
        }
        return wanted.count == segments.count
    }
}
