import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import SecureChannelPKI
import X509

/// The one place an endpoint's TLS material lives: our certificate and key, the CAs we trust and the CRLs we
/// enforce, with the TLS context built from them. Servers and clients alike read the current material from here
/// for every new connection; ``reload()`` swaps it atomically and keeps the old material when anything fails.
///
/// At every load it checks that our certificate fits the side it is used on: a listening side (``Role/server``)
/// presents a serverAuth certificate, an originating side (``Role/client``) a clientAuth one, and neither a CA
/// certificate. A certificate renewal later writes through here too.
package final class MaterialStore: Sendable {
    /// Which side of TLS the material is for.
    package enum Role: Sendable {
        /// We accept TLS and verify clients against `rules`. With `clientCertificateOptional` (the online CA, where
        /// a first enrollment comes without a certificate) a client may present none, or any leaf of the CA (a
        /// server renews with its server certificate); one it presents is verified all the same.
        case server(rules: AccessRules, clientCertificateOptional: Bool = false)
        /// We originate TLS to a server that must carry `serverName`; `timeout` bounds connect and handshake.
        case client(serverName: String, timeout: TimeAmount, serverSPIFFEID: String? = nil)

        /// The certificate purpose we present.
        var ourPurpose: CertificatePurpose {
            if case .server = self { return .server }
            return .client
        }
    }

    /// Material in use, with what was built from it.
    package struct Active: Sendable {
        /// The material.
        package let material: TLSMaterial
        /// Server side: the TLS context for accepted connections.
        let serverContext: NIOSSLContext?
        /// Server side: the client verifier (chain, EKU, rules, CRLs).
        let verifier: PeerVerifier?
        /// Client side: context and handlers for originated connections.
        package let clientSetup: TLSClientSetup?
    }

    /// The role.
    package let role: Role
    /// The TLS versions and parameters.
    package let tls: TLSPolicy
    /// Where the material is read from again on ``reload()``; nil: fixed material.
    package let files: TLSMaterialFiles?
    private let current: NIOLockedValueBox<Active>
    private let watcher: FileWatcher?
    private let seen: NIOLockedValueBox<[FileWatcher.Stamp?]>

    /// Builds the store from `material`; throws a one-line error if it does not fit `role`.
    package init(material: TLSMaterial, files: TLSMaterialFiles?, role: Role, tls: TLSPolicy) throws {
        self.role = role
        self.tls = tls
        self.files = files
        watcher = files.map { FileWatcher(paths: $0.paths) }
        seen = NIOLockedValueBox(watcher?.stamps() ?? [])
        current = NIOLockedValueBox(try Self.activate(material, role: role, tls: tls))
    }

    /// Loads `files` and builds the store.
    package convenience init(files: TLSMaterialFiles, role: Role, tls: TLSPolicy) throws {
        try self.init(material: try files.load(), files: files, role: role, tls: tls)
    }

    /// What new connections use now.
    package var active: Active { current.withLockedValue { $0 } }

    /// The material new connections use now.
    package var material: TLSMaterial { current.withLockedValue { $0.material } }

    /// Reads the files again and, if everything loads and fits the role, uses the new material for new
    /// connections. On failure the current material stays and the error says why. Throws if the store has no files.
    @discardableResult
    package func reload() throws -> TLSMaterial {
        guard let files else { throw SecureChannelError(.configuration, "no files to reload from") }
        let stamps = watcher?.stamps() ?? []
        let active = try Self.activate(try files.load(), role: role, tls: tls)
        current.withLockedValue { $0 = active }
        seen.withLockedValue { $0 = stamps }
        return active.material
    }

    /// Whether a watched file changed (inode, size, modification time) since the last look or load.
    package func filesChanged() -> Bool {
        guard let watcher else { return false }
        let now = watcher.stamps()
        return seen.withLockedValue { seen in
            defer { seen = now }
            return seen != now
        }
    }

    /// Builds the TLS context (and the verifier) for `material` after checking it fits `role`.
    private static func activate(_ material: TLSMaterial, role: Role, tls policy: TLSPolicy) throws -> Active {
        try material.identity.checkFits(role.ourPurpose)
        switch role {
        case .server(let rules, let optional):
            var tls = TLSConfiguration.makeServerConfiguration(
                certificateChain: material.identity.nioChain.map { .certificate($0) },
                privateKey: .privateKey(material.identity.nioKey))
            policy.apply(to: &tls)
            // A client certificate is required (unless optional); PeerVerifier checks any that is presented.
            tls.certificateVerification = optional ? .optionalVerification : .noHostnameVerification
            tls.trustRoots = .certificates(material.trust.nioCertificates)  // never the system roots
            tls.sendCANameList = true
            let context: NIOSSLContext
            do {
                context = try NIOSSLContext(configuration: tls)
            } catch {
                throw SecureChannelError(.configuration, "the TLS stack refused the server configuration: \(error)")
            }
            var verifier = PeerVerifier(
                trust: material.trust, purpose: .client, serverName: nil, rules: rules,
                revocation: material.revocation)
            verifier.requiresPurpose = !optional
            return Active(material: material, serverContext: context, verifier: verifier, clientSetup: nil)
        case .client(let serverName, let timeout, let serverSPIFFEID):
            let setup = try TLSClientSetup(
                material: material, serverName: serverName, serverSPIFFEID: serverSPIFFEID, tls: policy,
                timeout: timeout)
            return Active(material: material, serverContext: nil, verifier: nil, clientSetup: setup)
        }
    }
}

extension TLSIdentity {
    /// Throws a one-line error naming the file when our certificate cannot serve `purpose`: a CA certificate, or
    /// one whose extendedKeyUsage is for the other side (a client certificate given to a server, or the reverse).
    package func checkFits(_ purpose: CertificatePurpose) throws {
        let wanted = purpose == .server ? "a server certificate (serverAuth)" : "a client certificate (clientAuth)"
        let side = purpose == .server ? "a listening side presents" : "a connecting side presents"
        if case .isCertificateAuthority = try? leaf.extensions.basicConstraints {
            throw SecureChannelError(
                .configuration,
                "\(source) is a CA certificate, not \(wanted): \(side) its own certificate issued by the CA, not ca.crt"
            )
        }
        if let problem = purpose.problem(with: leaf) {
            throw SecureChannelError(.configuration, "\(source) cannot be used here: \(problem); \(side) \(wanted)")
        }
    }
}
