import Foundation
import X509

/// What the CA costs as its inventory grows (`Benchmarks/ca-scale.sh`): a new CA whose store is filled with
/// `size` synthetic records (a tenth of them revoked), then real issuances through the library, a CRL of every
/// revocation, and the listing of the revoked ones, each timed.
public enum CAScaleBenchmark {
    /// One inventory size's figures.
    public struct Result: Codable, Sendable {
        /// Records in the store before the issuances.
        public var size: Int
        /// How many of them are revoked.
        public var revoked: Int
        /// Seconds to fill the store.
        public var fillSeconds: Double
        /// Certificates issued in the timed run.
        public var issued: Int
        /// Issuances per second through the library (key generation, signature, files, store).
        public var issuesPerSecond: Double
        /// Seconds to sign and write one CRL of every revocation.
        public var crlSeconds: Double
        /// Entries in that CRL.
        public var crlEntries: Int
        /// Seconds to read the revoked certificates from the store.
        public var listRevokedSeconds: Double
    }

    /// Runs the benchmark in `directory` (which must not hold a CA).
    public static func run(directory: String, size: Int, revokedPercent: Int = 10, issues: Int = 200) throws
        -> Result
    {
        guard size >= 0, issues > 0, (0...100).contains(revokedPercent) else {
            throw PKIError.invalidArgument("--size ≥ 0, --issues > 0 and --revoked-percent 0…100, please")
        }
        let authority = try CertificateAuthority.create(directory: directory, name: "Scale Bench CA")
        let now = Date()
        let revoked = size * revokedPercent / 100
        let fillStart = Date()
        try fill(authority.store, count: size, revoked: revoked, now: now)
        let fillSeconds = Date().timeIntervalSince(fillStart)

        let out = "\(directory)/bench"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let issueStart = Date()
        for index in 0..<issues {
            _ = try authority.issue(.client(name: "bench-\(index)"), outPrefix: "\(out)/bench-\(index)")
        }
        let issueSeconds = Date().timeIntervalSince(issueStart)

        let crlStart = Date()
        let crl = try authority.generateCRL(out: "\(directory)/bench-crl.pem")
        let crlSeconds = Date().timeIntervalSince(crlStart)

        let listStart = Date()
        let listed = try authority.store.certificates(CAStore.Filter(status: .revoked))
        let listSeconds = Date().timeIntervalSince(listStart)
        guard listed.count == revoked, crl.entries.count == revoked else {
            throw PKIError(
                .store, "the store lists \(listed.count) revoked and the CRL \(crl.entries.count), expected \(revoked)")
        }
        return Result(
            size: size, revoked: revoked, fillSeconds: fillSeconds, issued: issues,
            issuesPerSecond: Double(issues) / issueSeconds, crlSeconds: crlSeconds, crlEntries: crl.entries.count,
            listRevokedSeconds: listSeconds)
    }

    /// Inserts `count` records with random serials (every `count / revoked`-th one revoked), in one transaction.
    static func fill(_ store: CAStore, count: Int, revoked: Int, now: Date) throws {
        var generator = SystemRandomNumberGenerator()
        let every = revoked == 0 ? Int.max : max(1, count / revoked)
        var entries: [Inventory.Entry] = []
        entries.reserveCapacity(count)
        var revokedSoFar = 0
        for index in 0..<count {
            let serial = SerialNumbers.hex((0..<16).map { _ in UInt8.random(in: 0...127, using: &generator) | 1 })
            let isRevoked = index % every == 0 && revokedSoFar < revoked
            if isRevoked { revokedSoFar += 1 }
            entries.append(
                Inventory.Entry(
                    serial: serial, kind: .workload, name: "fill-\(index)", subject: "CN=fill-\(index)",
                    subjectAlternativeNames: ["URI:spiffe://bench.example/fill-\(index)"], keyType: "ecdsa-p256",
                    notBefore: now - 3_600, notAfter: now + 86_400, certificatePath: "fill/\(index).crt",
                    keyPath: "fill/\(index).key",
                    revocation: isRevoked ? Inventory.Revocation(date: now, reason: "superseded") : nil,
                    publicKeySHA256: nil))
        }
        try store.backend.writeTransaction(lockKey: store.issuer) {
            try store.insert(entries, ignoringDuplicates: false)
        }
    }
}
