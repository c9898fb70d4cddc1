import Foundation
import SecureChannelPKI
import Testing
import X509

@testable import SecureChannel

/// When an end warns that its certificate expires: within the horizon (14 days by default) for long-lived
/// certificates; for short-lived ones (renewed at two thirds of their life) only once less than a third is left.
@Suite("In memory: expiry warnings")
struct ExpiryWarningTests {
    /// A CA in a temporary directory, removed with it.
    final class TestPKIForExpiry: Sendable {
        let dir: String
        let ca: CertificateAuthority
        init() throws {
            dir = NSTemporaryDirectory() + "expiry-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            // Made 100 days ago, so that certificates can be issued in the past.
            ca = try CertificateAuthority.create(directory: dir, name: "Barry", now: Date() - 100 * 86_400)
        }
        deinit { try? FileManager.default.removeItem(atPath: dir) }
        /// A certificate of `lifetime` seconds issued `age` seconds ago.
        func certificate(lifetime: TimeInterval, age: TimeInterval) throws -> Certificate {
            var request = IssuanceRequest.server(name: "Jill-\(UUID().uuidString.prefix(8))", dnsNames: ["localhost"])
            request.lifetime = lifetime
            return try ca.issue(request, outPrefix: "\(dir)/\(request.name)", now: Date() - age).certificate
        }
    }

    let pki: TestPKIForExpiry

    init() throws { pki = try TestPKIForExpiry() }

    func warning(lifetime: TimeInterval, age: TimeInterval, horizonDays: Int = 14) throws -> String? {
        let certificate = try pki.certificate(lifetime: lifetime, age: age)
        return Acceptor.expiryWarning("the server certificate", certificate, horizonDays: horizonDays, now: Date())
    }

    @Test("long-lived: warned within the horizon, in days; after expiry, EXPIRED")
    func longLived() throws {
        let day: TimeInterval = 86_400
        #expect(try warning(lifetime: 90 * day, age: 10 * day) == nil)
        let soon = try #require(try warning(lifetime: 90 * day, age: 80 * day))
        #expect(soon.contains("(in 10 days): renew it soon"), "\(soon)")
        let gone = try #require(try warning(lifetime: 90 * day, age: 91 * day))
        #expect(gone.contains("EXPIRED on"), "\(gone)")
    }

    @Test("short-lived (under the horizon): quiet until a third of its life is left, then in hours, minutes, seconds")
    func shortLived() throws {
        // A fresh 24-hour certificate, and a 10-second one just renewed: no warning (it used to say "in 1 day").
        #expect(try warning(lifetime: 86_400, age: 60) == nil)
        #expect(try warning(lifetime: 10, age: 1) == nil)
        // A 10-day certificate 2 days old: within 14 days, but most of its life is left.
        #expect(try warning(lifetime: 10 * 86_400, age: 2 * 86_400) == nil)
        let hours = try #require(try warning(lifetime: 86_400, age: 19 * 3_600))
        #expect(hours.contains("(in 4 h)") || hours.contains("(in 5 h)"), "\(hours)")
        let minutes = try #require(try warning(lifetime: 3_600, age: 3_000))
        #expect(minutes.contains("(in 9 min)") || minutes.contains("(in 10 min)"), "\(minutes)")
    }
}
