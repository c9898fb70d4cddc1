import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import SecureChannelPKI
import X509

/// Verifies the peer's certificate chain with SecureChannel's rules (swift-certificates' `Verifier` plus EKU,
/// plus the name for servers, plus access rules for clients), replacing BoringSSL's verification so that the
/// reason for a refusal can be logged precisely.
struct PeerVerifier: Sendable {
    let trust: TrustAnchors
    let purpose: CertificatePurpose
    /// For servers being verified by a client: the name the user asked for.
    let serverName: String?
    /// For clients being verified by a server.
    let rules: AccessRules?
    /// CRLs to enforce.
    let revocation: RevocationList?
    /// For servers being verified by a client: the SPIFFE ID pattern it must match (then `serverName` is nil).
    var serverSPIFFEID: String? = nil
    /// Whether the peer's certificate must carry `purpose`'s extended key usage. The online CA lets any of its
    /// leaves in (a server renews with its server certificate); everything else requires it.
    var requiresPurpose = true

    /// Chains this verifier accepted (it lives as long as one generation of the material: a reload, a new CRL
    /// or new rules start an empty one).
    let accepted = AcceptedChains()

    /// The longest chain a peer may present (leaf included). Our CA issues leaves directly; a few intermediates
    /// leave room for other PKIs. A longer chain is refused before any parsing or path building.
    static let maximumChainLength = 8

    func callback(record: ConnectionRecord) -> NIOSSLCustomVerificationCallback {
        { certificates, promise in
            guard certificates.count <= Self.maximumChainLength else {
                let whose = purpose == .client ? "client" : "server"
                record.noteRefusal(.badCertificate)
                record.verificationFailure =
                    "\(whose) certificate rejected: chain too long (\(certificates.count) certificates; at most \(Self.maximumChainLength))"
                promise.succeed(.failed)
                return
            }
            let ders: [[UInt8]]
            do {
                ders = try certificates.map { try $0.toDERBytes() }
            } catch {
                record.noteRefusal(.badCertificate)
                record.verificationFailure = "certificate rejected: unreadable certificate (\(error))"
                promise.succeed(.failed)
                return
            }
            // A chain accepted before (the same bytes), still within its validity and its CRLs' lives: the same
            // answer, on the event loop, without parsing or verifying it again. BoringSSL still checks that the
            // peer holds the key (CertificateVerify); rules and CRLs cannot have changed (they would make another
            // verifier).
            if let known = accepted.lookup(ders, now: Date()) {
                record.certificate = known.leaf
                record.chain = known.chain
                record.identity = known.identity
                promise.succeed(.certificateVerified)
                return
            }
            // Off the event loop, on purpose: run on the loop it gave ~15 % more handshakes/s, but its transient
            // allocations then shared the loop thread's heap with each connection's long-lived TLS buffers and
            // idle RSS rose from 45 to 69 KiB per connection (Benchmarks/idle-memory.sh, BENCHMARKS.md).
            promise.completeWithTask {
                await verify(ders, record: record) ? .certificateVerified : .failed
            }
        }
    }

    func verify(_ ders: [[UInt8]], record: ConnectionRecord) async -> Bool {
        let whose = purpose == .client ? "client" : "server"
        let chain: [Certificate]
        do {
            chain = try ders.map { try Certificate(derEncoded: $0) }
        } catch {
            record.noteRefusal(.badCertificate)
            record.verificationFailure = "\(whose) certificate rejected: not valid X.509 (\(error))"
            return false
        }
        guard let leaf = chain.first else {
            record.noteRefusal(.noCertificate)
            record.verificationFailure = "\(whose) certificate rejected: no certificate"
            return false
        }
        let identity = PeerIdentity(certificate: leaf)
        // A CA certificate is never a peer's own certificate, whatever its key usage and EKU say.
        if case .isCertificateAuthority = try? leaf.extensions.basicConstraints {
            record.noteRefusal(.badCertificate)
            record.verificationFailure =
                "\(whose) certificate rejected (\(identity.subject), serial \(identity.serial)): it is a CA certificate (basicConstraints CA:TRUE), never accepted as a \(whose) certificate"
            return false
        }
        let validated: [Certificate]
        do {
            validated = try await CertificateVerification.verify(
                chain: chain, roots: trust.certificates, purpose: requiresPurpose ? purpose : nil, host: serverName)
        } catch {
            record.noteRefusal(Self.refusal(for: error.reason))
            record.verificationFailure =
                "\(whose) certificate rejected (\(identity.subject), serial \(identity.serial)): \(error.message)"
            return false
        }
        if let problem = revocation?.problem(withChain: validated) {
            record.noteRefusal(.revoked)
            record.verificationFailure = "\(whose) certificate refused (\(identity.subject)): \(problem)"
            return false
        }
        if let rules, let refusal = rules.refusal(of: identity) {
            record.noteRefusal(.notAllowed)
            record.verificationFailure = "refused by rules: \(refusal)"
            return false
        }
        if let pattern = serverSPIFFEID {
            guard let id = identity.spiffeID, AccessRules.uriMatches(pattern, id) else {
                record.noteRefusal(.badCertificate)
                record.verificationFailure =
                    "server certificate rejected (\(identity.subject)): \(identity.spiffeID.map { "SPIFFE ID \($0) does not match \(pattern)" } ?? "not an X.509-SVID (\(identity.uris.count) URI SANs), but --server-spiffe-id \(pattern) needs one")"
                return false
            }
        }
        record.certificate = leaf
        record.chain = validated
        record.identity = identity
        let lives =
            validated.map(\.notValidAfter)
            + (revocation.map { $0.allowExpired ? [] : $0.crls.compactMap(\.nextUpdate) } ?? [])
        if let until = lives.min() {
            accepted.store(
                ders, AcceptedChains.Entry(leaf: leaf, chain: validated, identity: identity, validUntil: until))
        }
        return true
    }

    /// The metrics/log category of a verification failure.
    static func refusal(for reason: SecureChannelPKI.CertificateVerification.Reason) -> RefusalReason {
        switch reason {
        case .expired, .notYetValid: return .expired
        case .unknownIssuer, .badSignature, .invalidChain: return .unknownCA
        case .wrongPurpose, .nameMismatch: return .badCertificate
        }
    }
}

/// The chains a ``PeerVerifier`` accepted, by their bytes, each until the first of its certificates or CRLs
/// expires: a client that reconnects with the same chain is not parsed and verified again (most of a handshake's
/// work outside BoringSSL, and a hop to a task). Bounded: when full, it starts again empty.
final class AcceptedChains: Sendable {
    struct Entry: Sendable {
        let leaf: Certificate
        let chain: [Certificate]
        let identity: PeerIdentity
        let validUntil: Date
    }

    static let capacity = 1_000
    private let entries = NIOLockedValueBox<[[[UInt8]]: Entry]>([:])

    func lookup(_ ders: [[UInt8]], now: Date) -> Entry? {
        entries.withLockedValue { entries in
            guard let entry = entries[ders] else { return nil }
            guard now < entry.validUntil else {
                entries[ders] = nil
                return nil
            }
            return entry
        }
    }

    func store(_ ders: [[UInt8]], _ entry: Entry) {
        entries.withLockedValue { entries in
            if entries.count >= Self.capacity { entries.removeAll(keepingCapacity: true) }
            entries[ders] = entry
        }
    }

    var count: Int { entries.withLockedValue { $0.count } }
}
