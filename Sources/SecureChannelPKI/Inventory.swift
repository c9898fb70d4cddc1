import Foundation

/// The records of a CA, and the inventory file that held them before the store (``CAStore``): `DIR/index.json`,
/// rewritten whole on every change. A directory that still has one is migrated into its store on first use.
///
/// Paths inside the CA directory are stored relative to it, so a copied or moved directory is self-contained
/// (version 2). A version 1 inventory (absolute paths) is migrated when it is read: paths inside the directory
/// become relative, paths elsewhere stay absolute and ``CertificateAuthority/renew(name:reuseKey:days:outPrefix:now:)``
/// refuses to write there without an explicit `--out`.
public struct Inventory: Codable, Sendable, Equatable {
    /// File name of the inventory inside a CA directory.
    public static let fileName = "index.json"
    /// The format version this code writes.
    public static let currentVersion = 2

    /// Format version of the file.
    public var version: Int
    /// Every certificate the CA has issued, oldest first.
    public var certificates: [Entry]
    /// The number the next CRL will carry (monotonic).
    public var nextCRLNumber: Int
    /// The public keys of every certificate ever revoked: never certified again, even after the entry is gone.
    public var revokedKeys: [RevokedKey]

    /// An empty inventory.
    public init() {
        version = Self.currentVersion
        certificates = []
        nextCRLNumber = 1
        revokedKeys = []
    }

    /// An inventory holding these records (e.g. a store's, written out as `index.json`).
    public init(certificates: [Entry], nextCRLNumber: Int, revokedKeys: [RevokedKey]) {
        version = Self.currentVersion
        self.certificates = certificates
        self.nextCRLNumber = nextCRLNumber
        self.revokedKeys = revokedKeys
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        version = try container.decode(Int.self, forKey: .version)
        certificates = try container.decode([Entry].self, forKey: .certificates)
        nextCRLNumber = try container.decode(Int.self, forKey: .nextCRLNumber)
        revokedKeys = try container.decodeIfPresent([RevokedKey].self, forKey: .revokedKeys) ?? []
    }

    /// A public key that must not be certified again.
    public struct RevokedKey: Codable, Sendable, Equatable {
        /// SHA-256 of the SubjectPublicKeyInfo, colon-separated upper-case hex (as `cert inspect` shows it).
        public var publicKeySHA256: String
        /// The serial of the certificate whose revocation put the key here.
        public var serial: String
        /// The RFC 5280 reason name given at revocation.
        public var reason: String
    }

    /// The revocation record of `publicKeySHA256`, if a certificate for that key was ever revoked.
    public func revocation(ofKey publicKeySHA256: String) -> RevokedKey? {
        revokedKeys.first { $0.publicKeySHA256 == publicKeySHA256 }
    }

    /// Where `stored` (a path as kept in an entry) is on disk: relative paths are inside `directory`.
    public static func resolve(_ stored: String, in directory: String) -> String {
        guard !stored.isEmpty, !stored.hasPrefix("/") else { return stored }
        return "\(directory)/\(stored)"
    }

    /// How `path` is kept in an entry: relative to `directory` when it lies inside it, else absolute.
    public static func storedPath(_ path: String, in directory: String) -> String {
        guard !path.isEmpty else { return "" }
        let base = absolute(directory)
        let full = absolute(path)
        if full.hasPrefix(base + "/") { return String(full.dropFirst(base.count + 1)) }
        return full
    }

    /// Whether `path` lies inside `directory` (lexically, after making both absolute).
    public static func isInside(_ path: String, directory: String) -> Bool {
        absolute(path).hasPrefix(absolute(directory) + "/")
    }

    static func absolute(_ path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.path
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
        /// Where the certificate was written: relative to the CA directory when inside it, else absolute.
        public var certificatePath: String
        /// Where its private key was written (same rule; empty when the key stayed with a CSR's requester).
        public var keyPath: String
        /// Set once the certificate is revoked.
        public var revocation: Revocation?
        /// SHA-256 of the certificate's SubjectPublicKeyInfo (as `cert inspect` shows it); nil in inventories
        /// written before version 2 whose `issued/SERIAL.crt` copy is gone.
        public var publicKeySHA256: String?

        /// The file prefix (the certificate path without `.crt`), as stored.
        public var prefix: String {
            certificatePath.hasSuffix(".crt") ? String(certificatePath.dropLast(4)) : certificatePath
        }

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

    /// Reads the inventory of a CA directory, migrating an older format in memory (the next change saves it).
    public static func load(directory: String) throws -> Inventory {
        let path = "\(directory)/\(fileName)"
        guard SecureFile.exists(path) else { return Inventory() }
        let bytes = try SecureFile.read(path)
        var inventory: Inventory
        do {
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            inventory = try decoder.decode(Inventory.self, from: Data(bytes))
        } catch {
            throw PKIError.malformed("\(path) is corrupt (\(error.localizedDescription)); restore it from a backup")
        }
        guard inventory.version <= currentVersion else {
            throw PKIError(
                .malformedInput,
                "\(path) has format version \(inventory.version), newer than this securechannel understands (\(currentVersion)); upgrade securechannel"
            )
        }
        if inventory.version < currentVersion { inventory.migrate(directory: directory) }
        return inventory
    }

    /// Version 1 → 2: paths inside the directory become relative; public-key hashes are filled in from the
    /// `issued/` copies, and the keys of revoked certificates enter ``revokedKeys``.
    mutating func migrate(directory: String) {
        for index in certificates.indices {
            var entry = certificates[index]
            entry.certificatePath = Self.storedPath(entry.certificatePath, in: directory)
            entry.keyPath = Self.storedPath(entry.keyPath, in: directory)
            if entry.publicKeySHA256 == nil {
                let copy = "\(directory)/\(CertificateAuthority.Files.issued)/\(entry.serial).crt"
                if let bytes = try? SecureFile.read(copy),
                    let certificate = try? CertificateIO.parseCertificates(bytes, source: copy).first
                {
                    entry.publicKeySHA256 = try? certificate.publicKey.spkiSHA256()
                }
            }
            if let revocation = entry.revocation, let hash = entry.publicKeySHA256, self.revocation(ofKey: hash) == nil
            {
                revokedKeys.append(RevokedKey(publicKeySHA256: hash, serial: entry.serial, reason: revocation.reason))
            }
            certificates[index] = entry
        }
        version = Self.currentVersion
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
    /// An X.509-SVID (SPIFFE): one SPIFFE ID as its only URI SAN, serverAuth and clientAuth; both ends of a mesh.
    case workload
    /// An intermediate CA this CA signed (`ca init --parent`).
    case intermediate
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
