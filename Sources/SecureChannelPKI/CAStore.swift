import Foundation
import X509

/// Where a CA keeps the record of what it issued and revoked: SQLite in `DIR/ca.db` by default, or a PostgreSQL
/// database shared by several CA processes on several machines. Both hold the same tables; every change is one
/// transaction, serialised against every other writer of the same CA, so its cost does not grow with the inventory.
///
/// One store may hold several CAs (a root and its intermediates on one PostgreSQL database): every row carries its
/// CA's identity, the SHA-256 of the CA certificate's public key.
public final class CAStore: Sendable {
    /// File name of the SQLite store inside a CA directory.
    public static let fileName = "ca.db"
    /// The schema this code creates and reads.
    static let schemaVersion = 3

    /// Where a store is.
    public enum Location: Sendable, Equatable, CustomStringConvertible {
        /// An SQLite file.
        case sqlite(path: String)
        /// A PostgreSQL connection string, `postgres://USER:PASSWORD@HOST:PORT/DATABASE`.
        case postgres(url: String)

        /// The default store of a CA directory: `DIR/ca.db`.
        public static func directory(_ directory: String) -> Location { .sqlite(path: "\(directory)/\(fileName)") }

        /// `postgres://…` (or `postgresql://…`), `sqlite:PATH`, or a path to an SQLite file.
        public init(parsing text: String) throws {
            if text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") {
                _ = try PostgresLocation(text)
                self = .postgres(url: text)
            } else if text.hasPrefix("sqlite:") {
                self = .sqlite(path: String(text.dropFirst("sqlite:".count)))
            } else if text.contains("://") {
                throw PKIError.invalidArgument(
                    "the CA store '\(PostgresLocation.redacted(text))' is neither postgres://… nor an SQLite file; use postgres://USER:PASSWORD@HOST:PORT/DATABASE or a path"
                )
            } else {
                self = .sqlite(path: text)
            }
        }

        /// For messages: the file, or the server without the password.
        public var description: String {
            switch self {
            case .sqlite(let path): path
            case .postgres(let url): (try? PostgresLocation(url).display) ?? PostgresLocation.redacted(url)
            }
        }
    }

    /// Where this store is.
    public let location: Location
    let backend: any SQLBackend
    /// The CA whose records these are.
    let issuer: String

    init(location: Location, backend: any SQLBackend, issuer: String) {
        self.location = location
        self.backend = backend
        self.issuer = issuer
    }

    /// Opens (creating its tables when new) the store of the CA whose certificate is `authority`, and migrates the
    /// directory's `index.json` into it, if there is one (see ``migrate(directory:)``).
    public static func open(_ location: Location, authority: Certificate, directory: String) throws -> CAStore {
        let backend: any SQLBackend =
            switch location {
            case .sqlite(let path): try SQLiteBackend(path: path)
            case .postgres(let url): try PostgresBackend(url: url)
            }
        let store = CAStore(location: location, backend: backend, issuer: try authority.publicKey.spkiSHA256())
        try store.createSchema()
        try store.migrate(directory: directory)
        return store
    }

    /// Closes the connection (also done when the store is released).
    public func close() { backend.close() }

    /// For a process that writes all day (`ca serve`): on SQLite, write-ahead logging while it has the store open
    /// (one fsync per commit instead of three), the rollback journal again once it closes. Nothing on PostgreSQL.
    public func useWriteAheadLog() { backend.useWriteAheadLog() }

    /// Creates the tables and this CA's counter unless they are there: a store that is ready is only read, so
    /// `ca list` works on a read-only copy.
    func createSchema() throws {
        if let rows = try? backend.execute(
            "SELECT m.value, c.value FROM sc_meta m, sc_counters c WHERE m.issuer = '' AND m.key = 'schema' AND c.issuer = $1 AND c.name = 'crl'",
            [.text(issuer)]), let text = rows.first?.first?.string, let version = Int(text)
        {
            guard version <= Self.schemaVersion else { throw Self.newerSchema(version, location) }
            if version == Self.schemaVersion { return }
        }
        let key = backend.dialect.autoIncrementKey
        try backend.writeTransaction(lockKey: "securechannel-schema") {
            for statement in [
                "CREATE TABLE IF NOT EXISTS sc_meta (issuer TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (issuer, key))",
                """
                CREATE TABLE IF NOT EXISTS sc_certificates (id \(key), issuer TEXT NOT NULL, serial TEXT NOT NULL, \
                kind TEXT NOT NULL, name TEXT NOT NULL, subject TEXT NOT NULL, sans TEXT NOT NULL, \
                key_type TEXT NOT NULL, not_before DOUBLE PRECISION NOT NULL, not_after DOUBLE PRECISION NOT NULL, \
                certificate_path TEXT NOT NULL, key_path TEXT NOT NULL, public_key_sha256 TEXT, \
                revoked_at DOUBLE PRECISION, revocation_reason TEXT, UNIQUE (issuer, serial))
                """,
                // Version 3 adds `certificate_pem` (below): the certificate itself, for those issued over the
                // network, which have no file in the CA directory.
                "CREATE INDEX IF NOT EXISTS sc_certificates_name ON sc_certificates (issuer, name)",
                "CREATE INDEX IF NOT EXISTS sc_certificates_not_after ON sc_certificates (issuer, not_after)",
                "CREATE INDEX IF NOT EXISTS sc_certificates_revoked ON sc_certificates (issuer, revoked_at) WHERE revoked_at IS NOT NULL",
                "CREATE INDEX IF NOT EXISTS sc_certificates_path ON sc_certificates (issuer, certificate_path)",
                """
                CREATE TABLE IF NOT EXISTS sc_revoked_keys (issuer TEXT NOT NULL, public_key_sha256 TEXT NOT NULL, \
                serial TEXT NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (issuer, public_key_sha256))
                """,
                "CREATE TABLE IF NOT EXISTS sc_counters (issuer TEXT NOT NULL, name TEXT NOT NULL, value BIGINT NOT NULL, PRIMARY KEY (issuer, name))",
                // Version 2: one-time enrollment tokens, found by a selector, checked by the SHA-256 of the whole.
                """
                CREATE TABLE IF NOT EXISTS sc_tokens (issuer TEXT NOT NULL, selector TEXT NOT NULL, \
                token_sha256 TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, dns TEXT NOT NULL, \
                ips TEXT NOT NULL, uris TEXT NOT NULL, lifetime DOUBLE PRECISION NOT NULL, \
                expires_at DOUBLE PRECISION NOT NULL, created_at DOUBLE PRECISION NOT NULL, \
                used_at DOUBLE PRECISION, PRIMARY KEY (issuer, selector))
                """,
            ] {
                _ = try backend.execute(statement, [])
            }
            try addColumn("certificate_pem", type: "TEXT", to: "sc_certificates")
            let rows = try backend.execute("SELECT value FROM sc_meta WHERE issuer = '' AND key = 'schema'", [])
            if let text = rows.first?.first?.string, let version = Int(text), version > Self.schemaVersion {
                throw Self.newerSchema(version, location)
            }
            // Raised, never lowered: an older securechannel opening a newer store is refused above.
            _ = try backend.execute(
                "INSERT INTO sc_meta (issuer, key, value) VALUES ('', 'schema', $1) ON CONFLICT (issuer, key) DO UPDATE SET value = excluded.value",
                [.text(String(Self.schemaVersion))])
            _ = try backend.execute(
                "INSERT INTO sc_counters (issuer, name, value) VALUES ($1, 'crl', 1) ON CONFLICT DO NOTHING",
                [.text(issuer)])
        }
    }

    /// Adds a nullable column unless the table has it (inside the schema transaction).
    private func addColumn(_ column: String, type: String, to table: String) throws {
        switch backend.dialect {
        case .postgres:
            _ = try backend.execute("ALTER TABLE \(table) ADD COLUMN IF NOT EXISTS \(column) \(type)", [])
        case .sqlite:
            let rows = try backend.execute(
                "SELECT COUNT(*) FROM pragma_table_info('\(table)') WHERE name = '\(column)'", [])
            if rows.first?.first?.integer == 0 {
                _ = try backend.execute("ALTER TABLE \(table) ADD COLUMN \(column) \(type)", [])
            }
        }
    }

    static func newerSchema(_ version: Int, _ location: Location) -> PKIError {
        PKIError(
            .store,
            "the CA store \(location) has schema version \(version), newer than this securechannel understands (\(schemaVersion)); upgrade securechannel"
        )
    }

    // MARK: - Reading

    /// Which certificates a query wants; every condition given must hold.
    public struct Filter: Sendable {
        /// Issued for this name (CN).
        public var name: String?
        /// This serial (hex, any case, colons allowed).
        public var serial: String?
        /// Written to one of these certificate paths (as stored: relative to the CA directory when inside it).
        public var certificatePaths: [String]?
        /// With this status at ``now``.
        public var status: CertificateStatus?
        /// Valid at ``now`` and expiring by this date.
        public var expiringBy: Date?
        /// Expired before this date (revoked or not).
        public var expiredBefore: Date?
        /// The time statuses are judged at.
        public var now: Date

        /// Every certificate.
        public init(
            name: String? = nil, serial: String? = nil, certificatePaths: [String]? = nil,
            status: CertificateStatus? = nil, expiringBy: Date? = nil, expiredBefore: Date? = nil, now: Date = Date()
        ) {
            self.name = name
            self.serial = serial
            self.certificatePaths = certificatePaths
            self.status = status
            self.expiringBy = expiringBy
            self.expiredBefore = expiredBefore
            self.now = now
        }

        /// The WHERE clause (after `issuer = $1`) and its parameters, numbered from `$2`.
        func clause() -> (sql: String, binds: [SQLValue]) {
            var conditions = ["issuer = $1"]
            var binds: [SQLValue] = []
            func parameter(_ value: SQLValue) -> String {
                binds.append(value)
                return "$\(binds.count + 1)"
            }
            if let name { conditions.append("name = \(parameter(.text(name)))") }
            if let serial {
                let normalized = CertificateRevocationList.Entry.normalized(serial)
                conditions.append(
                    "(serial = \(parameter(.text(normalized))) OR serial = \(parameter(.text("00" + normalized))))")
            }
            if let certificatePaths {
                let list = certificatePaths.map { parameter(.text($0)) }
                conditions.append(list.isEmpty ? "1 = 0" : "certificate_path IN (\(list.joined(separator: ", ")))")
            }
            let time = SQLValue(now)
            switch status {
            case .revoked: conditions.append("revoked_at IS NOT NULL")
            case .expired: conditions.append("revoked_at IS NULL AND not_after < \(parameter(time))")
            case .notYetValid: conditions.append("revoked_at IS NULL AND not_before > \(parameter(time))")
            case .valid:
                let at = parameter(time)
                conditions.append("revoked_at IS NULL AND not_before <= \(at) AND not_after >= \(at)")
            case nil: break
            }
            if let expiringBy {
                let at = parameter(time)
                conditions.append(
                    "revoked_at IS NULL AND not_before <= \(at) AND not_after >= \(at) AND not_after <= \(parameter(SQLValue(expiringBy)))"
                )
            }
            if let expiredBefore { conditions.append("not_after < \(parameter(SQLValue(expiredBefore)))") }
            return (conditions.joined(separator: " AND "), binds)
        }
    }

    static let columns =
        "serial, kind, name, subject, sans, key_type, not_before, not_after, certificate_path, key_path, public_key_sha256, revoked_at, revocation_reason"

    /// The certificates `filter` wants, oldest first (newest first with `newestFirst`), at most `limit`.
    public func certificates(_ filter: Filter = Filter(), newestFirst: Bool = false, limit: Int? = nil) throws
        -> [Inventory.Entry]
    {
        let (clause, binds) = filter.clause()
        var sql = "SELECT \(Self.columns) FROM sc_certificates WHERE \(clause) ORDER BY id\(newestFirst ? " DESC" : "")"
        if let limit { sql += " LIMIT \(limit)" }
        return try backend.execute(sql, [.text(issuer)] + binds).map(Self.entry)
    }

    /// The certificate with this serial, if recorded: one indexed lookup (a renewal's), no ordering.
    public func certificate(serial: String) throws -> Inventory.Entry? {
        let normalized = CertificateRevocationList.Entry.normalized(serial)
        return try backend.execute(
            "SELECT \(Self.columns) FROM sc_certificates WHERE issuer = $1 AND serial IN ($2, $3) LIMIT 1",
            [.text(issuer), .text(normalized), .text("00" + normalized)]
        ).first.map(Self.entry)
    }

    /// How many certificates `filter` wants.
    public func count(_ filter: Filter = Filter()) throws -> Int {
        let (clause, binds) = filter.clause()
        let rows = try backend.execute("SELECT COUNT(*) FROM sc_certificates WHERE \(clause)", [.text(issuer)] + binds)
        return Int(rows.first?.first?.integer ?? 0)
    }

    /// Whether a certificate with this serial was ever recorded (and not tidied away).
    func contains(serial: String) throws -> Bool {
        try count(Filter(serial: serial)) > 0
    }

    /// The revocation record of `publicKeySHA256`, if a certificate for that key was ever revoked.
    public func revokedKey(_ publicKeySHA256: String) throws -> Inventory.RevokedKey? {
        try backend.execute(
            "SELECT public_key_sha256, serial, reason FROM sc_revoked_keys WHERE issuer = $1 AND public_key_sha256 = $2",
            [.text(issuer), .text(publicKeySHA256)]
        ).first.map {
            Inventory.RevokedKey(
                publicKeySHA256: $0[0].string ?? "", serial: $0[1].string ?? "", reason: $0[2].string ?? "")
        }
    }

    /// Every revoked public key, oldest revocation first.
    public func revokedKeys() throws -> [Inventory.RevokedKey] {
        try backend.execute(
            "SELECT public_key_sha256, serial, reason FROM sc_revoked_keys WHERE issuer = $1 ORDER BY serial",
            [.text(issuer)]
        ).map {
            Inventory.RevokedKey(
                publicKeySHA256: $0[0].string ?? "", serial: $0[1].string ?? "", reason: $0[2].string ?? "")
        }
    }

    /// The certificate with this serial (PEM): as the store holds it (issued over the network), else read from
    /// the file it was written to (`directory` resolves a relative path).
    public func certificatePEM(serial: String, directory: String) throws -> String {
        let (clause, binds) = Filter(serial: serial).clause()
        guard
            let row = try backend.execute(
                "SELECT certificate_pem, certificate_path FROM sc_certificates WHERE \(clause)", [.text(issuer)] + binds
            ).first
        else {
            throw PKIError(
                .fileNotFound, "no certificate with serial \(serial) in this CA's store; 'ca list' shows the serials")
        }
        if let pem = row[0].string { return pem }
        let path = row[1].string ?? ""
        let file = path.hasPrefix("/") ? path : "\(directory)/\(path)"
        let certificates = try CertificateIO.parseCertificates(try SecureFile.read(file), source: file)
        return try CertificateIO.pem(Array(certificates.prefix(1)))
    }

    static func entry(_ row: [SQLValue]) -> Inventory.Entry {
        let sans = row[4].string ?? ""
        return Inventory.Entry(
            serial: row[0].string ?? "", kind: CertificateKind(rawValue: row[1].string ?? "") ?? .client,
            name: row[2].string ?? "", subject: row[3].string ?? "",
            subjectAlternativeNames: sans.isEmpty ? [] : sans.components(separatedBy: "\n"),
            keyType: row[5].string ?? "", notBefore: Date(timeIntervalSince1970: row[6].double ?? 0),
            notAfter: Date(timeIntervalSince1970: row[7].double ?? 0), certificatePath: row[8].string ?? "",
            keyPath: row[9].string ?? "",
            revocation: row[11].double.map {
                Inventory.Revocation(date: Date(timeIntervalSince1970: $0), reason: row[12].string ?? "unspecified")
            },
            publicKeySHA256: row[10].string)
    }

    // MARK: - Migration

    /// File name an `index.json` is renamed to once its content is in the store.
    public static let migratedInventoryName = "\(Inventory.fileName).migrated"

    /// Moves `DIR/index.json` (the inventory before the store) into the store, in one transaction, and renames it
    /// `index.json.migrated`. Entries already in the store are kept as they are, so running it again after a crash
    /// between the commit and the rename (or on a restored `index.json`) adds only what is missing.
    func migrate(directory: String) throws {
        let path = "\(directory)/\(Inventory.fileName)"
        guard SecureFile.exists(path) else { return }
        try SecureFile.withExclusiveLock("\(directory)/\(CertificateAuthority.Files.lock)") {
            guard SecureFile.exists(path) else { return }
            let inventory = try Inventory.load(directory: directory)
            try backend.writeTransaction(lockKey: issuer) {
                try insert(inventory.certificates, ignoringDuplicates: true)
                for key in inventory.revokedKeys {
                    _ = try backend.execute(
                        "INSERT INTO sc_revoked_keys (issuer, public_key_sha256, serial, reason) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                        [.text(issuer), .text(key.publicKeySHA256), .text(key.serial), .text(key.reason)])
                }
                _ = try backend.execute(
                    "UPDATE sc_counters SET value = $2 WHERE issuer = $1 AND name = 'crl' AND value < $2",
                    [.text(issuer), .integer(Int64(inventory.nextCRLNumber))])
            }
            guard rename(path, "\(directory)/\(Self.migratedInventoryName)") == 0 else {
                throw PKIError(
                    .io,
                    "migrated \(path) into \(location) but cannot rename it: \(String(cString: strerror(errno))); rename it to \(Self.migratedInventoryName) by hand"
                )
            }
        }
    }
}
