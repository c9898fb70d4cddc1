import Foundation

/// What a CA has issued, kept as `DIR/index.json` and replaced atomically on every change.
public struct Inventory: Codable, Sendable, Equatable {
    /// File name of the inventory inside a CA directory.
    public static let fileName = "index.json"

    /// Format version of the file.
    public var version: Int
    /// Every certificate the CA has issued, oldest first.
    public var certificates: [Entry]
    /// The number the next CRL will carry (monotonic).
    public var nextCRLNumber: Int

    /// An empty inventory.
    public init() {
        version = 1
        certificates = []
        nextCRLNumber = 1
    }

    /// One issued certificate.
    public struct Entry: Codable, Sendable, Equatable {
        /// Serial number, upper-case hexadecimal without separators.
        public var serial: String
        /// Server or client.
        public var kind: CertificateKind
        /// The name it was issued for (its CN).
        public var name: String
        /// The subject in RFC 4514 form.
        public var subject: String
        /// Subject alternative names, e.g. `DNS:localhost`, `IP:127.0.0.1`.
        public var subjectAlternativeNames: [String]
        /// Key type name, e.g. `ecdsa-p256`.
        public var keyType: String
        /// Start of validity.
        public var notBefore: Date
        /// End of validity.
        public var notAfter: Date
        /// Where the certificate was written.
        public var certificatePath: String
        /// Where its private key was written.
        public var keyPath: String
        /// Set once the certificate is revoked.
        public var revocation: Revocation?

        /// Status at a point in time.
        public func status(at date: Date) -> CertificateStatus {
            if revocation != nil { return .revoked }
            if date > notAfter { return .expired }
            if date < notBefore { return .notYetValid }
            return .valid
        }
    }

    /// A revocation record.
    public struct Revocation: Codable, Sendable, Equatable {
        /// When it was revoked.
        public var date: Date
        /// The RFC 5280 reason name, e.g. `keyCompromise`.
        public var reason: String
    }

    /// Reads the inventory of a CA directory.
    public static func load(directory: String) throws -> Inventory {
        let path = "\(directory)/\(fileName)"
        guard SecureFile.exists(path) else { return Inventory() }
        let bytes = try SecureFile.read(path)
        do {
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            return try decoder.decode(Inventory.self, from: Data(bytes))
        } catch {
            throw PKIError.malformed("\(path) is corrupt (\(error.localizedDescription)); restore it from a backup")
        }
    }

    /// Writes the inventory atomically.
    public func save(directory: String) throws {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(self)
        try SecureFile.write(Array(data) + [0x0A], to: "\(directory)/\(Self.fileName)", mode: SecureFile.publicMode)
    }
}

/// What a certificate is for.
public enum CertificateKind: String, Codable, Sendable, CaseIterable {
    /// A TLS server certificate (extendedKeyUsage serverAuth).
    case server
    /// A TLS client certificate (extendedKeyUsage clientAuth).
    case client
}

/// Status of an issued certificate.
public enum CertificateStatus: String, Codable, Sendable {
    /// Within its validity period and not revoked.
    case valid
    /// Past its notAfter date.
    case expired
    /// Before its notBefore date.
    case notYetValid = "not-yet-valid"
    /// Revoked by the CA.
    case revoked
}
