import Crypto
import Foundation
import SwiftASN1
import X509

/// A certificate authority kept in a directory: `ca.crt`, `ca.key` (0600, optionally encrypted),
/// `ca.db` (the store: what it issued and revoked; or a PostgreSQL database, see ``CAStore``) and
/// `issued/SERIAL.crt` (a copy of everything issued).
public struct CertificateAuthority: Sendable {
    /// File names inside a CA directory.
    public enum Files {
        /// The CA certificate.
        public static let certificate = "ca.crt"
        /// The CA private key.
        public static let key = "ca.key"
        /// The lock file that serialises changes.
        public static let lock = ".lock"
        /// Directory holding a copy of every issued certificate.
        public static let issued = "issued"
        /// Where the records are when not in `ca.db`: the store's address without its password, one line.
        public static let storeNote = "store"
    }

    /// Default CA name.
    public static let defaultName = "SecureChannel CA"
    /// Default CA validity: ten years.
    public static let defaultDays = 3650
    /// How far notBefore is set in the past, to tolerate clock skew between peers.
    static let backdate: TimeInterval = 5 * 60

    /// How far a new certificate's start is set back for clock skew: 5 minutes, or a tenth of a shorter lifetime
    /// (a 20-second certificate must not be mostly in the past).
    static func backdate(lifetime: TimeInterval?) -> TimeInterval {
        guard let lifetime else { return backdate }
        return min(backdate, (lifetime / 10).rounded(.down))
    }

    /// The lifetime a certificate was issued with, from its validity (the inverse of ``backdate(lifetime:)``).
    static func lifetime(of certificate: Certificate) -> TimeInterval {
        let span = certificate.notValidAfter.timeIntervalSince(certificate.notValidBefore)
        return span >= 11 * backdate ? span - backdate : (span / 1.1).rounded()
    }

    /// The CA's directory.
    public let directory: String
    /// The CA certificate.
    public let certificate: Certificate
    let privateKey: Certificate.PrivateKey
    /// Where the record of what it issued and revoked is kept.
    public let store: CAStore
    /// What the user should know after ``open(directory:passphrase:)``, e.g. a CA key readable by others.
    public internal(set) var warnings: [String] = []

    /// Path of the CA certificate.
    public var certificatePath: String { "\(directory)/\(Files.certificate)" }

    /// Creates a new CA in `directory` (created with mode 0700 if missing, when its parent exists). Refuses if a
    /// CA is already there.
    ///
    /// With a passphrase the key is written as encrypted PKCS#8 (PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC).
    public static func create(
        directory: String, name: String = defaultName, keyType: KeyType = .default, days: Int = defaultDays,
        passphrase: [UInt8]? = nil, signsIntermediates: Bool = false, store: CAStore.Location? = nil,
        now: Date = Date()
    ) throws -> CertificateAuthority {
        try create(
            directory: directory, name: name, keyType: keyType, days: days, passphrase: passphrase, store: store,
            now: now, sign: nil, pathLength: signsIntermediates ? 1 : 0)
    }

    /// Creates a CA whose certificate `sign` makes (an intermediate, signed by its parent), or a self-signed root
    /// allowing `pathLength` CAs below it when `sign` is nil.
    static func create(
        directory: String, name: String, keyType: KeyType, days: Int, passphrase: [UInt8]?,
        store location: CAStore.Location?, now: Date,
        sign: ((Certificate.PrivateKey, DistinguishedName, SubjectKeyIdentifier) throws -> Certificate)?,
        pathLength: Int = 0
    ) throws -> CertificateAuthority {
        let parent = SecureFile.split(directory).directory
        if !SecureFile.exists(directory), parent.isEmpty || SecureFile.exists(parent) {
            if mkdir(directory, 0o700) != 0 && errno != EEXIST {
                throw PKIError(
                    .io, "cannot create directory \(directory): \(String(cString: strerror(errno))); check permissions")
            }
        }
        try SecureFile.requireWritableDirectory(directory)
        try IssuanceRequest.validateName(name)
        try IssuanceRequest.validateDays(days)
        if let passphrase, passphrase.isEmpty {
            throw PKIError.invalidArgument("the passphrase file is empty; put a passphrase in it")
        }
        let certPath = "\(directory)/\(Files.certificate)"
        let keyPath = "\(directory)/\(Files.key)"
        return try SecureFile.withExclusiveLock("\(directory)/\(Files.lock)") {
            for path in [certPath, keyPath] where SecureFile.exists(path) {
                throw PKIError(
                    .fileExists,
                    "a CA already exists in \(directory) (\(path)); use another --dir or remove the old CA first")
            }
            let key = try keyType.generate()
            let subject = try DistinguishedName { CommonName(name) }
            let skid = SubjectKeyIdentifier(hash: key.publicKey)
            let certificate =
                try sign?(key, subject, skid)
                ?? Certificate(
                    version: .v3,
                    serialNumber: try SerialNumbers.random(),
                    publicKey: key.publicKey,
                    notValidBefore: now - backdate,
                    notValidAfter: now + TimeInterval(days) * 86_400,
                    issuer: subject,
                    subject: subject,
                    signatureAlgorithm: key.preferredSignatureAlgorithm,
                    extensions: try Certificate.Extensions {
                        Critical(BasicConstraints.isCertificateAuthority(maxPathLength: pathLength))
                        Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                        skid
                        AuthorityKeyIdentifier(keyIdentifier: skid.keyIdentifier)
                    },
                    issuerPrivateKey: key
                )
            try SecureFile.write(
                try PrivateKeyIO.pem(key, passphrase: passphrase), to: keyPath,
                mode: SecureFile.privateMode, overwrite: false)
            do {
                try SecureFile.write(
                    try CertificateIO.pem([certificate]), to: certPath, mode: SecureFile.publicMode,
                    overwrite: false)
                try createIssuedDirectory(directory)
                let store = try openStore(directory: directory, certificate: certificate, requested: location)
                return CertificateAuthority(
                    directory: directory, certificate: certificate, privateKey: key, store: store)
            } catch {
                unlink(keyPath)
                unlink(certPath)
                if location == nil { unlink("\(directory)/\(CAStore.fileName)") }
                throw error
            }
        }
    }

    /// Opens an existing CA, checking that its key belongs to its certificate, and its store (`DIR/ca.db` unless
    /// `store` says otherwise), migrating an `index.json` into it.
    public static func open(directory: String, passphrase: [UInt8]? = nil, store location: CAStore.Location? = nil)
        throws -> CertificateAuthority
    {
        let certPath = "\(directory)/\(Files.certificate)"
        let keyPath = "\(directory)/\(Files.key)"
        guard SecureFile.exists(certPath) || SecureFile.exists(keyPath) else {
            if !SecureFile.exists(directory) {
                throw PKIError(
                    .fileNotFound,
                    "directory \(directory) does not exist; create a CA with 'securechannel ca init --dir \(directory)'"
                )
            }
            throw PKIError(
                .fileNotFound, "no CA in \(directory); create one with 'securechannel ca init --dir \(directory)'")
        }
        let certificates = try CertificateIO.parseCertificates(try SecureFile.read(certPath), source: certPath)
        let key = try PrivateKeyIO.parse(try SecureFile.read(keyPath), passphrase: passphrase, source: keyPath)
        let certificate = certificates[0]
        guard key.publicKey == certificate.publicKey else {
            throw PKIError(.keyMismatch, "\(keyPath) does not belong to \(certPath); restore the matching key")
        }
        let store = try openStore(directory: directory, certificate: certificate, requested: location)
        var authority = CertificateAuthority(
            directory: directory, certificate: certificate, privateKey: key, store: store)
        if let warning = SecureFile.keyExposureWarning(keyPath) { authority.warnings.append(warning) }
        return authority
    }

    /// Opens the store of the CA in `directory` without its key (to read the inventory).
    public static func openStore(directory: String, store location: CAStore.Location? = nil) throws -> CAStore {
        let certPath = "\(directory)/\(Files.certificate)"
        guard SecureFile.exists(certPath) else {
            throw PKIError(
                .fileNotFound, "no CA in \(directory); create one with 'securechannel ca init --dir \(directory)'")
        }
        let certificate = try CertificateIO.parseCertificates(try SecureFile.read(certPath), source: certPath)[0]
        return try openStore(directory: directory, certificate: certificate, requested: location)
    }

    /// Opens the store a CA directory uses. A CA whose records are elsewhere than `DIR/ca.db` says so in
    /// `DIR/store` (without the password), so that a command given no `--store`, or another one, is refused
    /// instead of starting an empty inventory.
    static func openStore(directory: String, certificate: Certificate, requested: CAStore.Location?) throws
        -> CAStore
    {
        let notePath = "\(directory)/\(Files.storeNote)"
        let note = try? String(decoding: SecureFile.read(notePath), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let location = requested ?? .directory(directory)
        if location == .directory(directory) {
            if let note {
                throw PKIError(
                    .store,
                    "\(directory) keeps its records in \(note); pass --store with that address (and its password) or set SECURECHANNEL_CA_STORE"
                )
            }
        } else if let note {
            guard note == location.description else {
                throw PKIError(
                    .store,
                    "\(directory) keeps its records in \(note), not \(location); pass --store with that address")
            }
        } else if SecureFile.exists("\(directory)/\(CAStore.fileName)") {
            throw PKIError(
                .store,
                "\(directory) keeps its records in \(directory)/\(CAStore.fileName); leave out --store and SECURECHANNEL_CA_STORE (moving them to another store is not supported)"
            )
        }
        let store = try CAStore.open(location, authority: certificate, directory: directory)
        if note == nil && location != .directory(directory) {
            try SecureFile.write(Array("\(location)\n".utf8), to: notePath, mode: SecureFile.publicMode)
        }
        return store
    }

    /// Whether the CA key in `directory` is encrypted (so opening it needs a passphrase).
    public static func keyIsEncrypted(directory: String) -> Bool {
        guard let bytes = try? SecureFile.read("\(directory)/\(Files.key)") else { return false }
        return String(decoding: bytes.prefix(64), as: UTF8.self).contains("ENCRYPTED")
    }

    /// Issues a leaf certificate and a new key, writes `PREFIX.crt` and `PREFIX.key` (0600), and records it
    /// in the inventory. Nothing is written unless everything succeeds. Safe to run concurrently.
    public func issue(_ request: IssuanceRequest, outPrefix: String? = nil, now: Date = Date()) throws
        -> IssuedCertificate
    {
        try request.validate()
        let prefix = try outPrefix ?? defaultPrefix(for: request.name)
        let key = try request.keyType.generate()
        return try issue(request, publicKey: key.publicKey, key: key, prefix: prefix, replace: false, now: now)
    }

    /// Issues for `publicKey`; writes `key` beside the certificate when given (nil: the key stays with whoever made
    /// a CSR). With `replace`, existing files at the prefix are replaced (renewal), else refused. With no prefix
    /// (enrollment over the network: the certificate goes back to the requester) no file is written: the store
    /// keeps the certificate itself (`ca export`), so a fleet renewing every day adds rows, not files.
    ///
    /// Files are written under the CA directory's lock. With no files, nothing needs it: the store's one statement
    /// (SQLite) or transaction (PostgreSQL, under its advisory lock) refuses a revoked key, a serial taken, and, with
    /// `renewing`, a renewal of a certificate revoked meanwhile. So issuances over the network run side by side.
    func issue(
        _ request: IssuanceRequest, publicKey: Certificate.PublicKey, key: Certificate.PrivateKey?, prefix: String?,
        replace: Bool, renewing: String? = nil, now: Date
    ) throws -> IssuedCertificate {
        guard let prefix else {
            let publicKeySHA256 = try publicKey.spkiSHA256()
            let issued = try sign(request, publicKey: publicKey, now: now)
            try store.record(
                entry(issued, request: request, publicKey: publicKey, publicKeySHA256: publicKeySHA256),
                certificatePEM: try CertificateIO.pem([issued.certificate]), renewing: renewing)
            return IssuedCertificate(
                certificate: issued.certificate, serial: issued.serial, certificatePath: "", keyPath: "",
                warnings: issued.warnings)
        }
        let certPath = "\(prefix).crt"
        let keyPath = key == nil ? "" : "\(prefix).key"
        return try SecureFile.withExclusiveLock("\(directory)/\(Files.lock)") {
            if !replace {
                for path in [certPath, keyPath] where !path.isEmpty && SecureFile.exists(path) {
                    throw PKIError(
                        .fileExists, "\(path) already exists; choose another --out PREFIX or remove the old files")
                }
            }
            let publicKeySHA256 = try publicKey.spkiSHA256()
            // Files are written before the record, so a revoked key is refused before them.
            if let revoked = try store.revokedKey(publicKeySHA256) {
                throw PKIError(
                    .revokedKey,
                    "this public key belonged to certificate \(revoked.serial), revoked (\(revoked.reason)): a revoked key is never certified again; make a new key"
                )
            }
            let issued = try sign(request, publicKey: publicKey, now: now)
            let entry = entry(issued, request: request, publicKey: publicKey, publicKeySHA256: publicKeySHA256)
            // An intermediate's leaves travel with its certificate: peers that trust only the root build the path.
            let pem = try CertificateIO.pem([issued.certificate] + (isIntermediate ? [certificate] : []))
            try Self.createIssuedDirectory(directory)
            let copy = "\(directory)/\(Files.issued)/\(issued.serial).crt"
            try SecureFile.write(
                try CertificateIO.pem([issued.certificate]), to: copy, mode: SecureFile.publicMode, overwrite: false)
            var written = [copy]
            do {
                // Key before certificate: a watcher that sees the new certificate finds its key already there.
                if let key, !keyPath.isEmpty {
                    try SecureFile.write(
                        try PrivateKeyIO.pem(key), to: keyPath, mode: SecureFile.privateMode, overwrite: replace)
                    if !replace { written.append(keyPath) }
                }
                try SecureFile.write(pem, to: certPath, mode: SecureFile.publicMode, overwrite: replace)
                if !replace { written.append(certPath) }
                var recorded = entry
                recorded.certificatePath = Inventory.storedPath(certPath, in: directory)
                recorded.keyPath = Inventory.storedPath(keyPath, in: directory)
                try store.record(recorded)
            } catch {
                for path in written { unlink(path) }
                throw error
            }
            return IssuedCertificate(
                certificate: issued.certificate, serial: issued.serial, certificatePath: certPath,
                keyPath: keyPath, warnings: issued.warnings)
        }
    }

    /// The inventory record of a certificate just signed (no file yet).
    private func entry(
        _ issued: (certificate: Certificate, serial: String, warnings: [String]), request: IssuanceRequest,
        publicKey: Certificate.PublicKey, publicKeySHA256: String
    ) -> Inventory.Entry {
        Inventory.Entry(
            serial: issued.serial, kind: request.kind, name: request.name,
            subject: issued.certificate.subject.description,
            subjectAlternativeNames: CertificateDescription.alternativeNames(of: issued.certificate),
            keyType: KeyType(publicKey)?.rawValue ?? request.keyType.rawValue,
            notBefore: issued.certificate.notValidBefore, notAfter: issued.certificate.notValidAfter,
            certificatePath: "", keyPath: "", revocation: nil, publicKeySHA256: publicKeySHA256)
    }

    /// Builds and signs the certificate for `request` (no files touched).
    func sign(_ request: IssuanceRequest, publicKey: Certificate.PublicKey, now: Date) throws
        -> (certificate: Certificate, serial: String, warnings: [String])
    {
        var warnings: [String] = []
        var notAfter = now + (request.lifetime ?? TimeInterval(request.days) * 86_400)
        if notAfter > certificate.notValidAfter {
            notAfter = certificate.notValidAfter
            warnings.append(
                "validity clamped to the CA's expiry (\(CertificateDescription.format(notAfter))): a certificate never outlives its CA"
            )
        }
        guard notAfter > now else {
            throw PKIError(
                .verificationFailed,
                "the CA certificate expired on \(CertificateDescription.format(certificate.notValidAfter)); create a new CA"
            )
        }
        try checkNameConstraints(request)
        // 127 random bits: a repeat is not expected in the life of the universe; `record` refuses one anyway, in the
        // transaction that writes the certificate, so no lookup is made here.
        let serialNumber = try SerialNumbers.random()

        let issuerKeyID =
            try certificate.extensions.subjectKeyIdentifier?.keyIdentifier
            ?? SubjectKeyIdentifier(hash: certificate.publicKey).keyIdentifier
        var usage = KeyUsage(digitalSignature: true)
        if publicKey.isRSA { usage.keyEncipherment = true }
        let eku: ExtendedKeyUsage =
            switch request.kind {
            case .server: try ExtendedKeyUsage([.serverAuth])
            case .client: try ExtendedKeyUsage([.clientAuth])
            case .workload: try ExtendedKeyUsage([.serverAuth, .clientAuth])
            case .intermediate:
                throw PKIError.invalidArgument(
                    "an intermediate CA is made with 'securechannel ca init --dir DIR --parent ROOT', not issued as a leaf"
                )
            }
        let names = try request.generalNames()
        let leaf = try Certificate(
            version: .v3,
            serialNumber: serialNumber,
            publicKey: publicKey,
            notValidBefore: max(now - Self.backdate(lifetime: request.lifetime), certificate.notValidBefore),
            notValidAfter: notAfter,
            issuer: certificate.subject,
            subject: try DistinguishedName { CommonName(request.name) },
            signatureAlgorithm: privateKey.preferredSignatureAlgorithm,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(usage)
                eku
                SubjectKeyIdentifier(hash: publicKey)
                AuthorityKeyIdentifier(keyIdentifier: issuerKeyID)
                if !names.isEmpty {
                    SubjectAlternativeNames(names)
                }
            },
            issuerPrivateKey: privateKey
        )
        return (leaf, SerialNumbers.hex(serialNumber), warnings)
    }

    func defaultPrefix(for name: String) throws -> String {
        guard !name.contains("/"), !name.hasPrefix("."), !name.contains("\0") else {
            throw PKIError.invalidArgument(
                "the name '\(name)' cannot be a file name; pass --out PREFIX to say where to write")
        }
        return "\(directory)/\(name)"
    }

    static func createIssuedDirectory(_ directory: String) throws {
        let path = "\(directory)/\(Files.issued)"
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw PKIError(.io, "cannot create \(path): \(error.localizedDescription)")
        }
    }
}

/// The result of ``CertificateAuthority/issue(_:outPrefix:now:)``.
public struct IssuedCertificate: Sendable {
    /// The new certificate.
    public var certificate: Certificate
    /// Its serial in upper-case hex.
    public var serial: String
    /// Where the certificate was written.
    public var certificatePath: String
    /// Where the private key was written (mode 0600).
    public var keyPath: String
    /// Things the user should know, e.g. that the validity was clamped to the CA's.
    public var warnings: [String]
}

/// Serial number generation and formatting.
public enum SerialNumbers {
    /// A random positive serial: 16 bytes with the sign bit cleared (127 random bits, under 20 octets).
    public static func random() throws -> Certificate.SerialNumber {
        var generator = SystemRandomNumberGenerator()
        var bytes = (0..<16).map { _ in UInt8.random(in: 0 ... .max, using: &generator) }
        bytes[0] &= 0x7F
        if bytes[0] == 0 { bytes[0] = 0x01 }  // keep a fixed length of 16 octets
        return Certificate.SerialNumber(bytes: bytes[...])
    }

    /// Upper-case hex with no separators or leading-zero padding beyond the encoded bytes.
    public static func hex(_ serial: Certificate.SerialNumber) -> String {
        hex(serial.bytes)
    }

    /// Upper-case hex of `bytes`, two digits each, no separators (runs once per handshake: no `String(format:)`,
    /// which costs a microsecond a byte).
    public static func hex(_ bytes: some Sequence<UInt8>) -> String {
        hex(bytes, separator: nil)
    }

    /// Hex of `bytes`, two digits each, `separator` between them (`AB:CD:…`), upper case unless `lowercase`.
    public static func hex(_ bytes: some Sequence<UInt8>, separator: UInt8?, lowercase: Bool = false) -> String {
        let digits = Array((lowercase ? "0123456789abcdef" : "0123456789ABCDEF").utf8)
        var out: [UInt8] = []
        for byte in bytes {
            if let separator, !out.isEmpty { out.append(separator) }
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
