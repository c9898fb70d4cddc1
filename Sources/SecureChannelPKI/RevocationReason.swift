/// RFC 5280 CRLReason codes.
public enum RevocationReason: Int, Sendable, CaseIterable, Codable {
    /// No reason given.
    case unspecified = 0
    /// The private key was exposed.
    case keyCompromise = 1
    /// The CA's key was exposed.
    case cACompromise = 2
    /// The subject's affiliation changed.
    case affiliationChanged = 3
    /// Replaced by a new certificate.
    case superseded = 4
    /// No longer needed.
    case cessationOfOperation = 5
    /// Temporarily on hold.
    case certificateHold = 6
    /// Removed from a delta CRL.
    case removeFromCRL = 8
    /// Privilege withdrawn.
    case privilegeWithdrawn = 9
    /// Attribute authority compromised.
    case aACompromise = 10

    /// The RFC name, e.g. `keyCompromise`.
    public var name: String { String(describing: self) }

    /// Parses a name (case-insensitive), with an error listing the valid ones.
    public init(parsing text: String) throws {
        guard let reason = Self.allCases.first(where: { $0.name.lowercased() == text.lowercased() }) else {
            throw PKIError.invalidArgument(
                "unknown revocation reason '\(text)'; use one of: \(Self.allCases.map(\.name).joined(separator: ", "))")
        }
        self = reason
    }
}

extension RevocationReason {
    /// Written as its RFC 5280 name (`"keyCompromise"`), as people and scripts read it; the number is read too.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(name)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let number = try? container.decode(Int.self), let reason = RevocationReason(rawValue: number) {
            self = reason
            return
        }
        let text = try container.decode(String.self)
        guard let reason = Self.allCases.first(where: { $0.name == text }) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "unknown revocation reason '\(text)'")
        }
        self = reason
    }
}
