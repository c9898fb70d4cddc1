/// Which verified clients may connect: by common name, DNS SAN or URI SAN; or any client the CA vouches for.
///
/// Checked after the certificate chain verified. An empty rule set refuses everyone; a server refuses to start
/// with one unless ``allowAnyClient`` is set.
public struct AccessRules: Sendable, Hashable {
    /// Allowed common names (exact match).
    public var commonNames: Set<String>
    /// Allowed DNS subjectAltNames (exact, case-insensitive).
    public var dnsNames: Set<String>
    /// Allowed URI subjectAltNames (exact).
    public var uris: Set<String>
    /// Allow any client whose certificate verifies against the CA.
    public var allowAnyClient: Bool

    /// Creates rules.
    public init(
        commonNames: Set<String> = [], dnsNames: Set<String> = [], uris: Set<String> = [], allowAnyClient: Bool = false
    ) {
        self.commonNames = commonNames
        self.dnsNames = Set(dnsNames.map { $0.lowercased() })
        self.uris = uris
        self.allowAnyClient = allowAnyClient
    }

    /// Any client the CA vouches for.
    public static let anyClient = AccessRules(allowAnyClient: true)

    /// True when no rule allows anything.
    public var isEmpty: Bool { !allowAnyClient && commonNames.isEmpty && dnsNames.isEmpty && uris.isEmpty }

    /// Whether `identity` may connect.
    public func permits(_ identity: PeerIdentity) -> Bool {
        if allowAnyClient { return true }
        if let cn = identity.commonName, commonNames.contains(cn) { return true }
        if identity.dnsNames.contains(where: { dnsNames.contains($0.lowercased()) }) { return true }
        if identity.uris.contains(where: { uris.contains($0) }) { return true }
        return false
    }

    /// A short description for logs and errors.
    public var summary: String {
        if allowAnyClient { return "any client of the CA" }
        var parts: [String] = []
        parts += commonNames.sorted().map { "CN=\($0)" }
        parts += dnsNames.sorted().map { "DNS:\($0)" }
        parts += uris.sorted().map { "URI:\($0)" }
        return parts.isEmpty ? "nobody" : parts.joined(separator: ", ")
    }
}
