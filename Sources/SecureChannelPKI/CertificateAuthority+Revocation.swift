import Foundation
import X509

extension CertificateAuthority {
    /// File name of the CRL kept in the CA directory.
    public static let crlFileName = "crl.pem"
    /// Default CRL lifetime (nextUpdate - thisUpdate): 7 days.
    public static let defaultCRLDays = 7

    /// Marks certificates revoked in the inventory (by name: every unrevoked one with that name; or by serial) and
    /// writes a fresh CRL to `DIR/crl.pem`. Returns the entries revoked.
    @discardableResult
    public func revoke(
        name: String? = nil, serial: String? = nil, file: String? = nil, reason: RevocationReason = .unspecified,
        crlDays: Int = defaultCRLDays, now: Date = Date()
    ) throws -> [Inventory.Entry] {
        guard [name, serial, file].compactMap({ $0 }).count == 1 else {
            throw PKIError.invalidArgument("give exactly one of --name NAME, --serial HEX or --file PREFIX")
        }
        // A file prefix as `ca list` shows it (relative to the directory) or as a path.
        let wantedPrefix = file.map {
            Inventory.storedPath($0.hasSuffix(".crt") ? String($0.dropLast(4)) : $0, in: directory)
        }
        try IssuanceRequest.validateDays(crlDays)
        var filter = CAStore.Filter(name: name, serial: serial)
        if let wantedPrefix, let file {
            let prefixes = Set([wantedPrefix, file, Inventory.storedPath(file, in: directory)])
            filter.certificatePaths = prefixes.flatMap { [$0 + ".crt", $0] }
        }
        return try SecureFile.withExclusiveLock("\(directory)/\(Files.lock)") {
            let (matches, fresh) = try store.revoke(filter, date: now, reason: reason.name)
            guard !matches.isEmpty else {
                throw PKIError(
                    .notFound,
                    "no certificate \(name.map { "named '\($0)'" } ?? file.map { "with file \($0)" } ?? "with serial \(serial!)") in \(directory); see 'securechannel ca list --dir \(directory)'"
                )
            }
            guard !fresh.isEmpty else {
                throw PKIError(
                    .invalidArgument, "already revoked: \(matches.map(\.serial).joined(separator: ", "))")
            }
            try writeCRL(to: "\(directory)/\(Self.crlFileName)", der: false, days: crlDays, now: now)
            return fresh
        }
    }

    /// Signs a CRL of everything revoked so far and writes it (PEM, or DER with `der`); bumps the CRL number.
    @discardableResult
    public func generateCRL(out: String? = nil, der: Bool = false, days: Int = defaultCRLDays, now: Date = Date())
        throws
        -> CertificateRevocationList
    {
        try IssuanceRequest.validateDays(days)
        return try SecureFile.withExclusiveLock("\(directory)/\(Files.lock)") {
            try writeCRL(to: out ?? "\(directory)/\(Self.crlFileName)", der: der, days: days, now: now)
        }
    }

    /// Signs and writes a CRL of every revocation in the store, under the next CRL number.
    @discardableResult
    func writeCRL(to path: String, der: Bool, days: Int, now: Date) throws -> CertificateRevocationList {
        let (number, entries) = try store.nextCRL()
        var nextUpdate = now + TimeInterval(days) * 86_400
        if nextUpdate > certificate.notValidAfter { nextUpdate = certificate.notValidAfter }
        let crl = try CertificateRevocationList.sign(
            issuer: certificate, key: privateKey, entries: entries, number: number,
            thisUpdate: now - Self.backdate, nextUpdate: nextUpdate)
        // The number was taken (and committed) first: a crash here skips a number, it never reuses one.
        if der {
            try SecureFile.write(crl.derBytes, to: path, mode: SecureFile.publicMode)
        } else {
            try SecureFile.write(crl.pem, to: path, mode: SecureFile.publicMode)
        }
        return crl
    }

    /// Issues a new certificate for the same identity as the newest one named `name`: same kind, subject names
    /// and key type; a new key unless `reuseKey`. By default the files are replaced in place (atomically each), so
    /// a server watching them picks up the new certificate; the old one stays valid until it expires or is revoked.
    public func renew(
        name: String, reuseKey: Bool = false, days: Int? = nil, outPrefix: String? = nil, now: Date = Date()
    )
        throws -> IssuedCertificate
    {
        guard let old = try store.certificates(CAStore.Filter(name: name), newestFirst: true, limit: 1).first else {
            throw PKIError(
                .notFound,
                "no certificate named '\(name)' in \(directory); see 'securechannel ca list --dir \(directory)'")
        }
        guard old.kind != .intermediate else {
            throw PKIError.invalidArgument(
                "\(old.name) is an intermediate CA: make a new one with 'securechannel ca init --dir NEW --parent \(directory)' and revoke the old one"
            )
        }
        let keyType = try KeyType(parsing: old.keyType)
        var request = IssuanceRequest(
            kind: old.kind, name: old.name, dnsNames: [], ipAddresses: [], emails: [], uris: [],
            days: days ?? IssuanceRequest.defaultDays, keyType: keyType)
        for san in old.subjectAlternativeNames {
            if san.hasPrefix("DNS:") { request.dnsNames.append(String(san.dropFirst(4))) }
            if san.hasPrefix("IP:") { request.ipAddresses.append(String(san.dropFirst(3))) }
            if san.hasPrefix("email:") { request.emails.append(String(san.dropFirst(6))) }
            if san.hasPrefix("URI:") { request.uris.append(String(san.dropFirst(4))) }
        }
        try request.validate()
        let oldPrefix = Inventory.resolve(old.prefix, in: directory)
        if outPrefix == nil && !Inventory.isInside(oldPrefix, directory: directory) {
            throw PKIError(
                .outsideDirectory,
                "\(old.name)'s files are recorded outside \(directory) (\(old.certificatePath)); ca commands write only inside --dir or where --out says: pass --out PREFIX, e.g. --out \(directory)/\(old.name)"
            )
        }
        let prefix = outPrefix ?? oldPrefix
        let key: Certificate.PrivateKey
        if old.keyPath.isEmpty {
            throw PKIError.invalidArgument(
                "\(old.name) was issued from a CSR and its key is on the requester's machine: make a new CSR there ('securechannel cert request') and sign it ('securechannel ca sign')"
            )
        }
        if reuseKey {
            if let revocation = old.revocation {
                throw PKIError(
                    .revokedKey,
                    "\(old.name)'s certificate \(old.serial) was revoked (\(revocation.reason)): its key is never certified again; renew without --reuse-key"
                )
            }
            let keyPath = Inventory.resolve(old.keyPath, in: directory)
            key = try PrivateKeyIO.parse(try SecureFile.read(keyPath), source: keyPath)
        } else {
            key = try keyType.generate()
        }
        return try issue(
            request, publicKey: key.publicKey, key: key, prefix: prefix, replace: outPrefix == nil, now: now)
    }
}

extension CertificateAuthority {
    /// Default for `ca tidy --older-than`: certificates expired more than 30 days ago.
    public static let defaultTidyDays = 30

    /// Removes from the inventory (and their copies from `issued/`) the certificates that expired more than
    /// `olderThanDays` days ago; when any of them was revoked, writes a fresh CRL without them (an expired
    /// certificate needs no CRL entry, RFC 5280 §3.3). The public keys of revoked certificates stay in
    /// the store's revoked keys: they are never certified again. Returns what was removed.
    @discardableResult
    public func tidy(olderThanDays: Int = defaultTidyDays, crlDays: Int = defaultCRLDays, now: Date = Date()) throws
        -> [Inventory.Entry]
    {
        guard olderThanDays >= 0 else {
            throw PKIError.invalidArgument("--older-than must be 0 days or more (got \(olderThanDays))")
        }
        return try SecureFile.withExclusiveLock("\(directory)/\(Files.lock)") {
            let removed = try store.removeExpired(before: now - TimeInterval(olderThanDays) * 86_400)
            if removed.contains(where: { $0.revocation != nil }) {
                try writeCRL(to: "\(directory)/\(Self.crlFileName)", der: false, days: crlDays, now: now)
            }
            for entry in removed { unlink("\(directory)/\(Files.issued)/\(entry.serial).crt") }
            return removed
        }
    }
}
