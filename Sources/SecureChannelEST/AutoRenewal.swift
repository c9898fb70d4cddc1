import CoreMetrics
import Foundation
import Logging
import NIOCore
import SecureChannel
import SecureChannelPKI
import ServiceLifecycle
import X509

/// The three files of an enrolled end, written so that a reader never pairs a new certificate with an old key.
public struct RenewalFiles: Sendable {
    /// The private key (0600).
    public var key: String
    /// The certificate, with the CA's chain below the root.
    public var certificate: String
    /// The CA bundle (the root); nil: left as it is.
    public var ca: String?

    /// Names the files.
    public init(key: String, certificate: String, ca: String?) {
        self.key = key
        self.certificate = certificate
        self.ca = ca
    }

    /// The key first (0600), then the certificate with the CA's chain below the root, then the root as CA bundle.
    public func write(key newKey: Certificate.PrivateKey, certificate leaf: Certificate, chain: [Certificate]) throws {
        guard newKey.publicKey == leaf.publicKey else {
            throw ESTClientError("the online CA answered with a certificate for another key; nothing was written")
        }
        let intermediates = chain.filter { $0.subject != $0.issuer }
        let roots = chain.filter { $0.subject == $0.issuer }
        try SecureFile.write(try PrivateKeyIO.pem(newKey), to: key, mode: SecureFile.privateMode)
        try SecureFile.write(
            try CertificateIO.pem([leaf] + intermediates), to: certificate, mode: SecureFile.publicMode)
        if let ca, !roots.isEmpty {
            try SecureFile.write(try CertificateIO.pem(roots), to: ca, mode: SecureFile.publicMode)
        }
    }
}

/// When a certificate is due for renewal, and how long to wait after a failure.
public enum RenewalSchedule {
    /// Two thirds of its lifetime, ±10 % of it at random (so a fleet does not renew in one instant).
    public static func due(_ certificate: Certificate, jitter: Double = Double.random(in: -0.1...0.1)) -> Date {
        let start = certificate.notValidBefore
        let lifetime = certificate.notValidAfter.timeIntervalSince(start)
        return start + lifetime * (2.0 / 3.0 + jitter)
    }

    /// 1, 2, 4 … seconds, at most 60, and never past half of what is left of the certificate.
    public static func backoff(failures: Int, left: TimeInterval) -> TimeInterval {
        max(0.2, min(60, pow(2, Double(max(0, failures - 1))), left / 2))
    }
}

/// One renewal: EST `simplereenroll` with the current certificate, a new key of the same type, the same names.
public enum Renewal {
    /// Renews the certificate in `files` at `url` (the server verified against `files.ca`, or `trust` when
    /// given) and writes the new key and certificate (and the CA bundle, when `files.ca` is set). Returns the new
    /// certificate.
    @discardableResult
    public static func renew(url: String, files: RenewalFiles, trustFile: String) async throws -> Certificate {
        let current = try TLSIdentity.load(certificateFile: files.certificate, keyFile: files.key)
        let trust = try TrustAnchors.load(file: trustFile)
        let leaf = current.leaf
        // Said here rather than by the CA's TLS alert: an expired certificate cannot authenticate a renewal.
        guard leaf.notValidAfter > Date() else {
            throw ESTClientError(
                "\(files.certificate) expired at \(CertificateDescription.format(leaf.notValidAfter)): an expired certificate cannot renew; enroll again with a new token"
            )
        }
        let names = CertificateDescription.alternativeNames(of: leaf)
        func values(_ prefix: String) -> [String] {
            names.filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }
        }
        let commonName =
            leaf.subject.reversed().lazy.flatMap { $0 }.first { $0.type == .RDNAttributeType.commonName }
            .map { String(describing: $0.value) } ?? ""
        let (newKey, csr) = try CertificateRequest.make(
            name: commonName, dnsNames: values("DNS:"), ipAddresses: values("IP:"), emails: values("email:"),
            uris: values("URI:"), keyType: KeyType(leaf.publicKey) ?? .default)
        let client = try ESTClient(url: url, trust: trust.certificates, identity: current)
        let certificate = try await client.reenroll(csr: try csr.serializeAsPEM().derBytes)
        let chain = try await client.caCertificates()
        try await ESTClient.checkIssued(certificate, chain: chain, trust: trust.certificates)
        try files.write(key: newKey, certificate: certificate, chain: chain)
        return certificate
    }
}

/// `--renew-from URL` on `serve`, `tunnel server` and `tunnel client`: renews the process's own certificate at two
/// thirds of its lifetime, writes the new key and certificate over the old ones, and has the listener or client
/// reload them through its material store: no restart, open connections carry on, new ones present the new
/// certificate. Failures are retried with backoff until the certificate expires.
public final class CertificateRenewer: Service, Sendable {
    let url: String
    let files: TLSMaterialFiles
    let target: any MaterialReloading
    let logger: Logger
    let renewals: Counter
    let failures: Counter

    /// Renews `files`' certificate and key at `url` (verified against `files.ca`) and reloads `target`.
    public init(
        url: String, files: TLSMaterialFiles, target: any MaterialReloading, logger: Logger,
        metricsFactory: (any MetricsFactory)? = nil
    ) throws {
        _ = try ESTClient.parse(url)
        self.url = url
        self.files = files
        self.target = target
        self.logger = logger
        let factory = metricsFactory ?? MetricsSystem.factory
        renewals = Counter(label: "securechannel_renewals_total", dimensions: [], factory: factory)
        failures = Counter(label: "securechannel_renewal_failures_total", dimensions: [], factory: factory)
    }

    /// Renews until graceful shutdown or cancellation, which end it normally (a stop is not an error).
    public func run() async throws {
        do {
            try await renewUntilStopped()
        } catch is CancellationError {}
    }

    private func renewUntilStopped() async throws {
        var failed = 0
        while !Task.isCancelled {
            let current: Certificate
            do {
                current = try TLSIdentity.load(certificateFile: files.certificate, keyFile: files.key).leaf
            } catch {
                logger.error("cannot read the certificate to renew: \(error)", metadata: ["event": "renewal-failed"])
                try await Self.sleep(10)
                continue
            }
            let wait = failed == 0 ? RenewalSchedule.due(current).timeIntervalSinceNow : 0
            if wait > 0 { try await Self.sleep(wait) }
            do {
                let renewed = try await Renewal.renew(
                    url: url, files: RenewalFiles(key: files.key, certificate: files.certificate, ca: nil),
                    trustFile: files.ca)
                renewals.increment()
                failed = 0
                logger.info(
                    "renewed our certificate at \(url): serial \(SerialNumbers.hex(renewed.serialNumber)), valid until \(CertificateDescription.format(renewed.notValidAfter))",
                    metadata: ["event": "renewed", "serial": "\(SerialNumbers.hex(renewed.serialNumber))"])
                target.reload(reason: "certificate renewed")
            } catch is CancellationError {
                return
            } catch {
                failures.increment()
                failed += 1
                let left = current.notValidAfter.timeIntervalSinceNow
                // Once the certificate has expired it cannot renew: try once a minute (the line says what to do).
                let backoff = left > 0 ? RenewalSchedule.backoff(failures: failed, left: left) : 60
                logger.error(
                    "renewal at \(url) failed (\(error)); retrying in \(String(format: "%.1f", backoff)) s\(left > 0 ? "" : " (the certificate has expired: renewal will keep failing; enroll again)")",
                    metadata: ["event": "renewal-failed"])
                try await Self.sleep(backoff)
            }
        }
    }

    /// Sleeps, ending early (with CancellationError) on graceful shutdown or cancellation.
    static func sleep(_ seconds: TimeInterval) async throws {
        try await cancelWhenGracefulShutdown {
            try await Task.sleep(for: .milliseconds(Int64(max(0, seconds) * 1000)))
        }
    }
}

/// `--crl-url URL [--crl-refresh 60s]`: fetches the CA's CRL (EST's `GET crl`) every interval over a connection
/// verified against `files.ca`, checks that the issuing CA signed it and that it is current, writes it to
/// `crlFile` (which the material store enforces) and reloads, so that a revoked peer's open connections are cut.
/// A failed fetch keeps the last good CRL; once that passes its nextUpdate, every peer it covers is refused
/// (fail closed), until a fresh one comes.
public final class CRLRefresher: Service, Sendable {
    let url: String
    let trustFile: String
    /// Where the fetched CRL is kept.
    public let crlFile: String
    let interval: TimeInterval
    let target: NIOLockedBoxSendable<(any MaterialReloading)?>
    let logger: Logger
    let age: NIOLockedBoxSendable<Gauge>
    let lastThisUpdate = NIOLockedBoxSendable<Date?>(nil)

    /// Keeps `crlFile` fresh from `url` every `interval` seconds.
    public init(
        url: String, trustFile: String, crlFile: String, interval: TimeInterval, logger: Logger,
        metricsFactory: (any MetricsFactory)? = nil
    ) throws {
        _ = try ESTClient.parse(url)
        guard interval >= 1 else { throw ESTClientError("--crl-refresh must be 1 second or more") }
        self.url = url
        self.trustFile = trustFile
        self.crlFile = crlFile
        self.interval = interval
        self.logger = logger
        target = NIOLockedBoxSendable(nil)
        age = NIOLockedBoxSendable(Self.ageGauge(metricsFactory ?? MetricsSystem.factory))
    }

    static func ageGauge(_ factory: any MetricsFactory) -> Gauge {
        Gauge(label: "securechannel_crl_age_seconds", dimensions: [], factory: factory)
    }

    /// The listener or client to reload after each new CRL (set once it exists).
    public func reloads(_ reloading: any MaterialReloading) { target.value = reloading }

    /// Reports `securechannel_crl_age_seconds` to `factory` from now on (the first CRL is fetched before the end
    /// and its metrics endpoint exist).
    public func reportAge(to factory: any MetricsFactory) {
        age.value = Self.ageGauge(factory)
        if let thisUpdate = lastThisUpdate.value { age.value.record(Date().timeIntervalSince(thisUpdate)) }
    }

    /// One fetch: the CRL written to ``crlFile`` if it is signed by the issuing CA and current. Used once before
    /// the listener starts (so it never starts without one) and then every interval.
    public func refresh() async throws {
        let trust = try TrustAnchors.load(file: trustFile)
        let client = try ESTClient(url: url, trust: trust.certificates)
        let der = try await client.crl()
        let crl = try CertificateRevocationList.load(der, source: "the CRL from \(url)")
        let chain = try await client.caCertificates()
        guard let issuer = chain.first(where: { $0.subject == crl.issuer }), crl.isSigned(by: issuer) else {
            throw ESTClientError(
                "the CRL from \(url) is not signed by the CA it names (\(crl.issuer)); kept the last one")
        }
        guard !crl.isExpired(at: Date()) else {
            throw ESTClientError("the CRL from \(url) is past its nextUpdate; kept the last one")
        }
        let previous = try? SecureFile.read(crlFile)
        let pem = Array(crl.pem.utf8)
        lastThisUpdate.value = crl.thisUpdate
        if previous != pem {
            try SecureFile.write(pem, to: crlFile, mode: SecureFile.publicMode)
            target.value?.reload(reason: "CRL refreshed from \(url)")
        }
    }

    /// Refreshes until graceful shutdown or cancellation, which end it normally.
    public func run() async throws {
        do {
            try await refreshUntilStopped()
        } catch is CancellationError {}
    }

    private func refreshUntilStopped() async throws {
        while !Task.isCancelled {
            try await CertificateRenewer.sleep(interval)
            do {
                try await refresh()
            } catch is CancellationError {
                return
            } catch {
                logger.error("CRL refresh from \(url) failed: \(error)", metadata: ["event": "crl-refresh-failed"])
            }
            if let thisUpdate = lastThisUpdate.value { age.value.record(Date().timeIntervalSince(thisUpdate)) }
        }
    }
}

/// A lock-protected value that can be shared across tasks.
public final class NIOLockedBoxSendable<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value
    init(_ value: Value) { stored = value }
    var value: Value {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}

/// `Benchmarks/est-renewals.sh`: renewals per second against one online CA, each a new TLS connection with our
/// certificate, a new key and CSR, the CA's checks, signature and store write. The certificate in `files` is renewed
/// again and again (it stays current); the new certificates are discarded.
public enum RenewalLoad {
    /// Renewals done and seconds taken.
    public struct Result: Codable, Sendable {
        public var renewals: Int
        public var failures: Int
        public var seconds: Double
        public var renewalsPerSecond: Double
    }

    public static func run(url: String, files: TLSMaterialFiles, seconds: Double, concurrency: Int) async throws
        -> Result
    {
        let identity = try TLSIdentity.load(certificateFile: files.certificate, keyFile: files.key)
        let trust = try TrustAnchors.load(file: files.ca)
        let client = try ESTClient(url: url, trust: trust.certificates, identity: identity)
        let leaf = identity.leaf
        let names = CertificateDescription.alternativeNames(of: leaf)
        let commonName =
            leaf.subject.reversed().lazy.flatMap { $0 }.first { $0.type == .RDNAttributeType.commonName }
            .map { String(describing: $0.value) } ?? ""
        let uris = names.filter { $0.hasPrefix("URI:") }.map { String($0.dropFirst(4)) }
        let emails = names.filter { $0.hasPrefix("email:") }.map { String($0.dropFirst(6)) }
        // The requests (new keys, signed CSRs) are made before the clock starts, as a load generator prepares its
        // requests: what is measured is the CA's work, not the key generation of its clients on the same cores.
        let requests = try (0..<max(8, 2 * concurrency)).map { _ in
            let (_, csr) = try CertificateRequest.make(
                name: commonName, emails: emails, uris: uris, keyType: KeyType(leaf.publicKey) ?? .default)
            return try csr.serializeAsPEM().derBytes
        }
        let start = Date()
        let end = start + seconds
        let counts = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            for worker in 0..<max(1, concurrency) {
                group.addTask {
                    var done = 0
                    var failed = 0
                    var next = worker
                    while Date() < end {
                        let csr = requests[next % requests.count]
                        next += concurrency
                        do {
                            _ = try await client.reenroll(csr: csr)
                            done += 1
                        } catch {
                            failed += 1
                        }
                    }
                    return (done, failed)
                }
            }
            var total = (0, 0)
            for try await (done, failed) in group { total = (total.0 + done, total.1 + failed) }
            return total
        }
        let elapsed = Date().timeIntervalSince(start)
        return Result(
            renewals: counts.0, failures: counts.1, seconds: elapsed, renewalsPerSecond: Double(counts.0) / elapsed)
    }
}
