import Foundation
import SecureChannelPKI
import TestSupport
import Testing
import X509

@Suite("Certificate verification")
struct VerificationTests {
    struct World {
        let dir: TemporaryDirectory
        let ca: CertificateAuthority
        let jill: Certificate
        let chris: Certificate
    }

    static func world() throws -> World {
        let dir = try TemporaryDirectory()
        let ca = try CertificateAuthority.create(directory: dir.path, name: "Barry")
        let jill = try ca.issue(.server(name: "Jill", dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"])).certificate
        let chris = try ca.issue(.client(name: "Chris")).certificate
        return World(dir: dir, ca: ca, jill: jill, chris: chris)
    }

    static func reason(_ body: () async throws -> Void) async -> CertificateVerification.Reason? {
        do {
            try await body()
            return nil
        } catch let failure as CertificateVerification.Failure {
            return failure.reason
        } catch {
            Issue.record("unexpected error \(error)")
            return nil
        }
    }

    @Test("valid server and client certificates verify for their purposes and names")
    func valid() async throws {
        let w = try Self.world()
        defer { w.dir.cleanup() }
        let chain = try await CertificateVerification.verify(
            chain: [w.jill], roots: [w.ca.certificate], purpose: .server, host: "localhost")
        #expect(chain.first == w.jill && chain.last == w.ca.certificate)
        try await CertificateVerification.verify(
            chain: [w.jill], roots: [w.ca.certificate], purpose: .server, host: "127.0.0.1")
        try await CertificateVerification.verify(chain: [w.chris], roots: [w.ca.certificate], purpose: .client)
    }

    @Test("each failure has its own reason")
    func reasons() async throws {
        let w = try Self.world()
        defer { w.dir.cleanup() }
        let roots = [w.ca.certificate]
        #expect(
            await Self.reason {
                try await CertificateVerification.verify(chain: [w.jill], roots: roots, at: Date() + 91 * 86_400)
            } == .expired)
        #expect(
            await Self.reason {
                try await CertificateVerification.verify(chain: [w.jill], roots: roots, at: Date() - 86_400)
            } == .notYetValid)
        #expect(
            await Self.reason {
                try await CertificateVerification.verify(chain: [w.chris], roots: roots, purpose: .server)
            } == .wrongPurpose)
        #expect(
            await Self.reason {
                try await CertificateVerification.verify(chain: [w.jill], roots: roots, purpose: .client)
            } == .wrongPurpose)
        #expect(
            await Self.reason {
                try await CertificateVerification.verify(chain: [w.jill], roots: roots, host: "example.com")
            } == .nameMismatch)
        #expect(
            await Self.reason {
                try await CertificateVerification.verify(chain: [w.jill], roots: roots, host: "127.0.0.2")
            } == .nameMismatch)

        let other = try TemporaryDirectory()
        defer { other.cleanup() }
        let stranger = try CertificateAuthority.create(directory: other.path, name: "Mallory")
        #expect(
            await Self.reason {
                try await CertificateVerification.verify(chain: [w.jill], roots: [stranger.certificate])
            } == .unknownIssuer)

        // Same name as Barry, different key: the signature cannot verify.
        let impostorDir = try TemporaryDirectory()
        defer { impostorDir.cleanup() }
        let impostor = try CertificateAuthority.create(directory: impostorDir.path, name: "Barry")
        let forged = try impostor.issue(.server(name: "Jill", dnsNames: ["localhost"])).certificate
        #expect(
            await Self.reason { try await CertificateVerification.verify(chain: [forged], roots: roots) }
                == .badSignature)
    }
}
