import Foundation
import X509

/// Writing a CA store: records of issuance (checked against revoked keys and taken serials in the same step),
/// revocations, the CRL counter, tidying.
extension CAStore {
    /// Records a newly signed certificate, refusing (in the same transaction) a key that was ever revoked and a
    /// serial already used.
    /// With `renewing`, the serial of the certificate being renewed: the record is refused if that one was revoked,
    /// checked in the same statement or transaction, so a revocation that lands during a renewal is never missed.
    func record(_ entry: Inventory.Entry, certificatePEM: String? = nil, renewing: String? = nil) throws {
        // On SQLite one statement, atomic on its own, does the checks and the insert: each statement is a trip to
        // sqlite-nio's thread and back, which was most of an issuance's store time. On PostgreSQL the SELECT's
        // untyped NULL parameters would not insert, so there the checks come first, in a transaction.
        if backend.dialect == .sqlite, let hash = entry.publicKeySHA256 {
            if try insertUnlessRevoked(entry, publicKeySHA256: hash, certificatePEM: certificatePEM, renewing: renewing)
            {
                return
            }
            try refuse(entry, renewing: renewing)
            throw PKIError(.store, "serial \(entry.serial) could not be recorded in the CA store; issue again")
        }
        try backend.writeTransaction(lockKey: issuer) {
            try refuse(entry, renewing: renewing)
            try insert([entry], ignoringDuplicates: false)
            if let certificatePEM {
                _ = try backend.execute(
                    "UPDATE sc_certificates SET certificate_pem = $3 WHERE issuer = $1 AND serial = $2",
                    [.text(issuer), .text(entry.serial), .text(certificatePEM)])
            }
        }
    }

    /// Throws why `entry` cannot be recorded (its key was revoked, its serial is taken, or the certificate it
    /// renews was revoked); returns if none.
    private func refuse(_ entry: Inventory.Entry, renewing: String?) throws {
        if let renewing, let revoked = try certificates(Filter(serial: renewing)).first,
            let revocation = revoked.revocation
        {
            throw PKIError(
                .renewalRefused,
                "certificate \(renewing) (\(revoked.name)) was revoked (\(revocation.reason)): it cannot renew; enroll again with a new token"
            )
        }
        if let hash = entry.publicKeySHA256, let revoked = try revokedKey(hash) {
            throw PKIError(
                .revokedKey,
                "this public key belonged to certificate \(revoked.serial), revoked (\(revoked.reason)): a revoked key is never certified again; make a new key"
            )
        }
        guard try !contains(serial: entry.serial) else {
            throw PKIError(.store, "serial \(entry.serial) is already in the CA store; issue again")
        }
    }

    /// Inserts `entry` unless its key was revoked or its serial is taken, in one statement; whether it did.
    private func insertUnlessRevoked(
        _ entry: Inventory.Entry, publicKeySHA256: String, certificatePEM: String?, renewing: String?
    ) throws -> Bool {
        let binds: [SQLValue] = [
            .text(issuer), .text(entry.serial), .text(entry.kind.rawValue), .text(entry.name), .text(entry.subject),
            .text(entry.subjectAlternativeNames.joined(separator: "\n")), .text(entry.keyType),
            SQLValue(entry.notBefore), SQLValue(entry.notAfter), .text(entry.certificatePath), .text(entry.keyPath),
            .text(publicKeySHA256), SQLValue(entry.revocation?.date), SQLValue(entry.revocation?.reason),
            SQLValue(certificatePEM),
        ]
        let values = (1...binds.count).map { "$\($0)" }.joined(separator: ", ")
        let renewed = binds.count + 1
        let rows = try backend.execute(
            """
            INSERT INTO sc_certificates (issuer, \(Self.columns), certificate_pem) SELECT \(values) \
            WHERE NOT EXISTS (SELECT 1 FROM sc_revoked_keys WHERE issuer = $1 AND public_key_sha256 = $12) \
            AND NOT EXISTS (SELECT 1 FROM sc_certificates WHERE issuer = $1 AND serial IN ($2, '00' || $2)) \
            AND NOT EXISTS (SELECT 1 FROM sc_certificates WHERE issuer = $1 AND serial = $\(renewed) \
            AND revoked_at IS NOT NULL) \
            ON CONFLICT DO NOTHING RETURNING serial
            """, binds + [SQLValue(renewing)])
        return !rows.isEmpty
    }

    /// Inserts entries (many per statement); with `ignoringDuplicates`, a serial already there is skipped.
    func insert(_ entries: [Inventory.Entry], ignoringDuplicates: Bool) throws {
        let perStatement = 500
        var start = 0
        while start < entries.count {
            let batch = entries[start..<min(start + perStatement, entries.count)]
            var binds: [SQLValue] = [.text(issuer)]
            var rows: [String] = []
            for entry in batch {
                let first = binds.count + 1
                binds += [
                    .text(entry.serial), .text(entry.kind.rawValue), .text(entry.name), .text(entry.subject),
                    .text(entry.subjectAlternativeNames.joined(separator: "\n")), .text(entry.keyType),
                    SQLValue(entry.notBefore), SQLValue(entry.notAfter), .text(entry.certificatePath),
                    .text(entry.keyPath), SQLValue(entry.publicKeySHA256), SQLValue(entry.revocation?.date),
                    SQLValue(entry.revocation?.reason),
                ]
                rows.append("($1, " + (first..<(first + 13)).map { "$\($0)" }.joined(separator: ", ") + ")")
            }
            _ = try backend.execute(
                "INSERT INTO sc_certificates (issuer, \(Self.columns)) VALUES \(rows.joined(separator: ", "))"
                    + (ignoringDuplicates ? " ON CONFLICT DO NOTHING" : ""), binds)
            start += perStatement
        }
    }

    /// Marks the unrevoked certificates `filter` wants as revoked, and their keys as never to be certified again.
    /// Returns every certificate matched and those newly revoked.
    func revoke(_ filter: Filter, date: Date, reason: String) throws -> (
        matched: [Inventory.Entry], revoked: [Inventory.Entry]
    ) {
        try backend.writeTransaction(lockKey: issuer) {
            let matched = try certificates(filter)
            var revoked: [Inventory.Entry] = []
            for var entry in matched where entry.revocation == nil {
                _ = try backend.execute(
                    "UPDATE sc_certificates SET revoked_at = $2, revocation_reason = $3 WHERE issuer = $1 AND serial = $4",
                    [.text(issuer), SQLValue(date), .text(reason), .text(entry.serial)])
                if let hash = entry.publicKeySHA256 {
                    _ = try backend.execute(
                        "INSERT INTO sc_revoked_keys (issuer, public_key_sha256, serial, reason) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                        [.text(issuer), .text(hash), .text(entry.serial), .text(reason)])
                }
                entry.revocation = Inventory.Revocation(date: date, reason: reason)
                revoked.append(entry)
            }
            return (matched, revoked)
        }
    }

    /// Takes the next CRL number and reads what the CRL must list, in that order and in one transaction: a CRL
    /// holds every revocation committed (by any process) before its number was taken, so a higher number never
    /// lists less.
    func nextCRL() throws -> (number: Int, revoked: [CertificateRevocationList.Entry]) {
        try backend.writeTransaction(lockKey: issuer) {
            let rows = try backend.execute(
                "UPDATE sc_counters SET value = value + 1 WHERE issuer = $1 AND name = 'crl' RETURNING value - 1",
                [.text(issuer)])
            guard let number = rows.first?.first?.integer else {
                throw PKIError(
                    .store, "the CA store \(location) has no CRL counter; open it with this securechannel again")
            }
            let revoked = try backend.execute(
                "SELECT serial, revoked_at, revocation_reason FROM sc_certificates WHERE issuer = $1 AND revoked_at IS NOT NULL ORDER BY id",
                [.text(issuer)]
            ).map { row in
                CertificateRevocationList.Entry(
                    serial: row[0].string ?? "", revocationDate: Date(timeIntervalSince1970: row[1].double ?? 0),
                    reason: row[2].string.flatMap { try? RevocationReason(parsing: $0) })
            }
            return (Int(number), revoked)
        }
    }

    /// Changes whenever a revocation is added or tidied away: the revoked count and the latest revocation time.
    /// The online CA signs a new CRL when it changes, so a revocation made by any process is served at once.
    public func revocationStamp() throws -> String {
        let rows = try backend.execute(
            "SELECT COUNT(*), MAX(revoked_at) FROM sc_certificates WHERE issuer = $1 AND revoked_at IS NOT NULL",
            [.text(issuer)])
        let row = rows.first ?? []
        return "\(row.first?.integer ?? 0)|\(row.count > 1 ? row[1].double ?? 0 : 0)"
    }

    /// The number the next CRL will carry.
    public func nextCRLNumber() throws -> Int {
        let rows = try backend.execute(
            "SELECT value FROM sc_counters WHERE issuer = $1 AND name = 'crl'", [.text(issuer)])
        return Int(rows.first?.first?.integer ?? 1)
    }

    /// Removes the certificates that expired before `date` and returns them.
    func removeExpired(before date: Date) throws -> [Inventory.Entry] {
        try backend.writeTransaction(lockKey: issuer) {
            let removed = try certificates(Filter(expiredBefore: date))
            if !removed.isEmpty {
                _ = try backend.execute(
                    "DELETE FROM sc_certificates WHERE issuer = $1 AND not_after < $2", [.text(issuer), SQLValue(date)])
            }
            return removed
        }
    }
}
