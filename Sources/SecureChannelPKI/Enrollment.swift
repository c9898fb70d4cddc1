import Foundation
import X509

/// What a one-time enrollment token allows (`securechannel ca token`): the kind, the name, the subject alternative
/// names (or the SPIFFE ID of a workload) and the lifetime of the one certificate it may be exchanged for, and
/// until when it may be.
public struct EnrollmentGrant: Sendable, Equatable {
    /// Server, client or workload.
    public var kind: CertificateKind
    /// The common name the request must carry.
    public var name: String
    /// DNS names the request must ask for, exactly.
    public var dnsNames: [String]
    /// IP addresses the request must ask for, exactly.
    public var ipAddresses: [String]
    /// URIs the request must ask for, exactly (a workload's SPIFFE ID).
    public var uris: [String]
    /// The certificate's lifetime, in seconds; 0: the online CA's default (`ca serve --default-lifetime`).
    public var lifetime: TimeInterval
    /// The token is refused after this moment.
    public var expires: Date

    /// A grant; checked by ``validate()``.
    public init(
        kind: CertificateKind, name: String, dnsNames: [String] = [], ipAddresses: [String] = [],
        uris: [String] = [], lifetime: TimeInterval, expires: Date
    ) {
        self.kind = kind
        self.name = name
        self.dnsNames = dnsNames
        self.ipAddresses = ipAddresses
        self.uris = uris
        self.lifetime = lifetime
        self.expires = expires
    }

    /// The issuance the grant stands for, checked by the same rules as `ca issue`.
    func request() throws -> IssuanceRequest {
        var request = IssuanceRequest(
            kind: kind, name: name, dnsNames: dnsNames, ipAddresses: ipAddresses, emails: [], uris: uris, days: 1,
            keyType: .default)
        request.lifetime = lifetime > 0 ? lifetime : nil
        return request
    }

    /// Throws a one-line error for a grant no request could satisfy or that the CA would refuse to issue.
    public func validate() throws {
        guard kind != .intermediate else {
            throw PKIError.invalidArgument("a token is for a server, client or workload certificate, not a CA")
        }
        guard lifetime == 0 || lifetime >= 10 else {
            throw PKIError.invalidArgument("the lifetime must be 10 seconds or more (got \(Int(lifetime)) s)")
        }
        guard lifetime <= TimeInterval(IssuanceRequest.maximumDays) * 86_400 else {
            throw PKIError.invalidArgument("the lifetime may be \(IssuanceRequest.maximumDays) days at most")
        }
        try request().validate()
    }

    /// `DNS:…`, `IP:…`, `URI:…` as `ca list` shows a certificate's names.
    var alternativeNames: [String] {
        dnsNames.map { "DNS:\($0)" } + ipAddresses.map { "IP:\($0)" } + uris.map { "URI:\($0)" }
    }
}

/// A token's text, and what the store keeps of it: a selector to find it and the SHA-256 of the whole, never the
/// token itself. After a dot, the token carries what it allows (kind, name, names) in the clear, so that
/// `securechannel enroll` can make the request without being told again; the CA checks the request against its
/// own record, never against that part.
public enum EnrollmentTokenText {
    /// What a token says it allows (not authoritative: the CA's store is).
    public struct Claims: Codable, Sendable, Equatable {
        /// server, client or workload.
        public var kind: String
        /// The common name.
        public var name: String
        /// DNS names.
        public var dns: [String]
        /// IP addresses.
        public var ip: [String]
        /// URIs (a workload's SPIFFE ID).
        public var uri: [String]
    }

    /// `sct1_` + 8 selector characters + 43 secret characters (base64url of 6 and 32 random bytes) + `.` +
    /// base64url of the claims' JSON.
    static func make(_ grant: EnrollmentGrant) throws -> String {
        var generator = SystemRandomNumberGenerator()
        func randomText(_ count: Int) -> String {
            base64URL((0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) })
        }
        let claims = Claims(
            kind: grant.kind.rawValue, name: grant.name, dns: grant.dnsNames, ip: grant.ipAddresses, uri: grant.uris)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return "sct1_" + randomText(6) + randomText(32) + "." + base64URL(Array(try encoder.encode(claims)))
    }

    /// What `token` says it allows, or nil when it is not a token's form.
    public static func claims(_ token: String) -> Claims? {
        guard parse(token) != nil, let dot = token.firstIndex(of: ".") else { return nil }
        var text = String(token[token.index(after: dot)...]).replacingOccurrences(of: "-", with: "+")
            .replacingOccurrences(of: "_", with: "/")
        while text.count % 4 != 0 { text += "=" }
        guard let data = Data(base64Encoded: text) else { return nil }
        return try? JSONDecoder().decode(Claims.self, from: data)
    }

    /// The selector and the hash of `token`, or nil when it is not a token's form.
    static func parse(_ token: String) -> (selector: String, sha256: String)? {
        let secret = token.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)[0]
        guard token.utf8.count <= 4096, secret.hasPrefix("sct1_"), secret.utf8.count == 5 + 8 + 43,
            token.utf8.allSatisfy({
                $0 == 0x2D || $0 == 0x5F || $0 == 0x2E || (0x30...0x39).contains($0) || (0x41...0x5A).contains($0)
                    || (0x61...0x7A).contains($0)
            })
        else { return nil }
        let selector = String(secret.dropFirst(5).prefix(8))
        return (selector, hash(token))
    }

    static func hash(_ token: String) -> String {
        CertificateIO.sha256Hex(Array(token.utf8))
    }

    /// Compares two equal-length texts in time that does not depend on where they differ.
    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let a = Array(a.utf8)
        let b = Array(b.utf8)
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    static func base64URL(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }
}

extension CAStore {
    /// Records a new token for `grant` and returns its text (shown once; the store keeps only its hash).
    func addToken(_ grant: EnrollmentGrant, now: Date) throws -> String {
        let token = try EnrollmentTokenText.make(grant)
        guard let (selector, hash) = EnrollmentTokenText.parse(token) else {
            throw PKIError(.store, "could not make a token; try again")
        }
        try backend.writeTransaction(lockKey: issuer) {
            _ = try backend.execute(
                """
                INSERT INTO sc_tokens (issuer, selector, token_sha256, kind, name, dns, ips, uris, lifetime, \
                expires_at, created_at, used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL)
                """,
                [
                    .text(issuer), .text(selector), .text(hash), .text(grant.kind.rawValue), .text(grant.name),
                    .text(grant.dnsNames.joined(separator: "\n")), .text(grant.ipAddresses.joined(separator: "\n")),
                    .text(grant.uris.joined(separator: "\n")), .real(grant.lifetime), SQLValue(grant.expires),
                    SQLValue(now),
                ])
        }
        return token
    }

    /// What `token` allows, if it is one of this CA's, unused and unexpired; else a one-line refusal.
    func grant(for token: String, now: Date) throws -> EnrollmentGrant {
        let refused = PKIError(
            .tokenRefused, "the token is not one this CA issued; ask for a new one ('securechannel ca token')")
        guard let (selector, hash) = EnrollmentTokenText.parse(token) else { throw refused }
        let rows = try backend.execute(
            "SELECT token_sha256, kind, name, dns, ips, uris, lifetime, expires_at, used_at FROM sc_tokens WHERE issuer = $1 AND selector = $2",
            [.text(issuer), .text(selector)])
        guard let row = rows.first, EnrollmentTokenText.constantTimeEqual(row[0].string ?? "", hash) else {
            throw refused
        }
        if row[8] != .null {
            throw PKIError(.tokenRefused, "the token was already used: a token works once; ask for a new one")
        }
        let expires = Date(timeIntervalSince1970: row[7].double ?? 0)
        guard expires > now else {
            throw PKIError(
                .tokenRefused,
                "the token expired at \(CertificateDescription.format(expires)); ask for a new one")
        }
        func list(_ value: SQLValue) -> [String] {
            guard let text = value.string, !text.isEmpty else { return [] }
            return text.components(separatedBy: "\n")
        }
        return EnrollmentGrant(
            kind: CertificateKind(rawValue: row[1].string ?? "") ?? .client, name: row[2].string ?? "",
            dnsNames: list(row[3]), ipAddresses: list(row[4]), uris: list(row[5]), lifetime: row[6].double ?? 0,
            expires: expires)
    }

    /// Marks `token` used, once: false when another request used it first.
    func redeem(_ token: String, now: Date) throws -> Bool {
        guard let (selector, _) = EnrollmentTokenText.parse(token) else { return false }
        return try backend.writeTransaction(lockKey: issuer) {
            let rows = try backend.execute(
                "UPDATE sc_tokens SET used_at = $3 WHERE issuer = $1 AND selector = $2 AND used_at IS NULL RETURNING selector",
                [.text(issuer), .text(selector), SQLValue(now)])
            return !rows.isEmpty
        }
    }

    /// Makes a redeemed token usable again (the issuance it was redeemed for failed).
    func unredeem(_ token: String) throws {
        guard let (selector, _) = EnrollmentTokenText.parse(token) else { return }
        try backend.writeTransaction(lockKey: issuer) {
            _ = try backend.execute(
                "UPDATE sc_tokens SET used_at = NULL WHERE issuer = $1 AND selector = $2",
                [.text(issuer), .text(selector)])
        }
    }
}

/// Enrollment (EST `simpleenroll`, with a token) and renewal (EST `simplereenroll`, with the current certificate).
extension CertificateAuthority {
    /// File in a CA directory holding the root of its chain, which `ca serve` verifies client certificates against.
    public static let rootFileName = "root.crt"

    /// The largest CSR accepted over the network.
    public static let maximumCSRBytes = 16 * 1024

    /// Makes a one-time token for `grant`; the text is shown once, the store keeps its hash.
    public func makeToken(_ grant: EnrollmentGrant, now: Date = Date()) throws -> String {
        try grant.validate()
        guard grant.expires > now else { throw PKIError.invalidArgument("the token's time to live must be positive") }
        try checkNameConstraints(try grant.request())
        return try store.addToken(grant, now: now)
    }

    /// Issues for a PKCS#10 request (DER) authorised by a one-time token. The request must ask for exactly what
    /// the token allows; the token is then used up. `maximumLifetime` caps the token's lifetime.
    public func enroll(
        csrDER: [UInt8], token: String, maximumLifetime: TimeInterval? = nil,
        defaultLifetime: TimeInterval = 24 * 3600, now: Date = Date()
    ) throws -> IssuedCertificate {
        let csr = try Self.readCSR(csrDER)
        let grant = try store.grant(for: token, now: now)
        var request = try CertificateRequest.issuanceRequest(
            for: csr, kind: grant.kind, days: 1, source: "the certificate request")
        let asked = Self.names(request)
        guard request.name == grant.name, Set(asked) == Set(grant.alternativeNames), request.emails.isEmpty else {
            throw PKIError(
                .tokenRefused,
                "the request asks for CN=\(request.name)\(asked.isEmpty ? "" : " " + asked.joined(separator: ","))\(request.emails.map { " email:\($0)" }.joined()) but the token allows CN=\(grant.name)\(grant.alternativeNames.isEmpty ? "" : " " + grant.alternativeNames.joined(separator: ",")) only; make the request for exactly that"
            )
        }
        let lifetime = grant.lifetime > 0 ? grant.lifetime : defaultLifetime
        request.lifetime = min(lifetime, maximumLifetime ?? lifetime)
        guard try store.redeem(token, now: now) else {
            throw PKIError(.tokenRefused, "the token was already used: a token works once; ask for a new one")
        }
        do {
            return try issue(request, publicKey: csr.publicKey, key: nil, prefix: nil, replace: false, now: now)
        } catch {
            try? store.unredeem(token)
            throw error
        }
    }

    /// Renews `current` (the certificate its holder authenticated with) for the key in a PKCS#10 request (DER):
    /// same kind, name and subject alternative names, a new key, the same lifetime (capped at `maximumLifetime`).
    /// A revoked or expired certificate, or one this CA did not issue, cannot renew.
    public func reenroll(
        csrDER: [UInt8], current: Certificate, maximumLifetime: TimeInterval? = nil, now: Date = Date()
    ) throws -> IssuedCertificate {
        let csr = try Self.readCSR(csrDER)
        let serial = SerialNumbers.hex(current.serialNumber)
        guard let entry = try store.certificate(serial: serial) else {
            throw PKIError(.renewalRefused, "certificate \(serial) was not issued by this CA; enroll with a token")
        }
        if let revocation = entry.revocation {
            throw PKIError(
                .renewalRefused,
                "certificate \(serial) (\(entry.name)) was revoked (\(revocation.reason)): it cannot renew; enroll again with a new token"
            )
        }
        guard now <= current.notValidAfter else {
            throw PKIError(
                .renewalRefused,
                "certificate \(serial) (\(entry.name)) expired at \(CertificateDescription.format(current.notValidAfter)): it cannot renew; enroll again with a new token"
            )
        }
        guard entry.kind != .intermediate else {
            throw PKIError(.renewalRefused, "an intermediate CA is not renewed over EST")
        }
        guard try csr.publicKey.spkiSHA256() != (try current.publicKey.spkiSHA256()) else {
            throw PKIError(.renewalRefused, "the request reuses the current certificate's key: renew with a new key")
        }
        var request = try CertificateRequest.issuanceRequest(
            for: csr, kind: entry.kind, days: 1, source: "the certificate request")
        let asked = Self.names(request) + request.emails.map { "email:\($0)" }
        guard request.name == entry.name, Set(asked) == Set(entry.subjectAlternativeNames) else {
            throw PKIError(
                .renewalRefused,
                "the request asks for CN=\(request.name) \(asked.joined(separator: ",")) but certificate \(serial) holds CN=\(entry.name) \(entry.subjectAlternativeNames.joined(separator: ",")); a renewal repeats the subject and names"
            )
        }
        let lifetime = Self.lifetime(of: current)
        request.lifetime = min(lifetime, maximumLifetime ?? lifetime)
        return try issue(
            request, publicKey: csr.publicKey, key: nil, prefix: nil, replace: false, renewing: serial, now: now)
    }

    /// The certificates a client should trust for this CA, this CA first and the root last.
    public func chain() throws -> [Certificate] {
        let parent = "\(directory)/\(Self.parentFileName)"
        guard isIntermediate, SecureFile.exists(parent) else { return [certificate] }
        return [certificate] + (try CertificateIO.parseCertificates(try SecureFile.read(parent), source: parent))
    }

    static func readCSR(_ der: [UInt8]) throws -> CertificateSigningRequest {
        guard der.count <= maximumCSRBytes else {
            throw PKIError.invalidArgument(
                "the certificate request is \(der.count) bytes, over the \(maximumCSRBytes)-byte limit")
        }
        return try CertificateRequest.parse(der, source: "the certificate request")
    }

    static func names(_ request: IssuanceRequest) -> [String] {
        request.dnsNames.map { "DNS:\($0)" } + request.ipAddresses.map { "IP:\($0)" } + request.uris.map { "URI:\($0)" }
    }
}
