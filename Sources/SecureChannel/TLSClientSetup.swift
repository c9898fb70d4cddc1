import Foundation
import NIOCore
import NIOSSL
import SecureChannelPKI

/// The originating side of an mTLS connection, shared by ``MessageClient`` and the tunnel client: the NIOSSL
/// client context (our certificate, only our CAs, the policy's versions and groups) and the per-connection
/// handlers (ServerHello observer, TLS with strict verification of the server's name, handshake events and
/// deadline).
package struct TLSClientSetup: Sendable {
    private let context: NIOSSLContext
    private let verifier: PeerVerifier
    private let serverName: String
    private let timeout: TimeAmount

    /// Builds the context once; connections then only add handlers.
    /// With `serverSPIFFEID`, the server is verified by its SPIFFE ID (a pattern as in ``AccessRules/spiffeIDs``)
    /// instead of by `serverName`, which then only goes into SNI.
    package init(
        material: TLSMaterial, serverName: String, serverSPIFFEID: String? = nil, tls policy: TLSPolicy,
        timeout: TimeAmount
    ) throws {
        if let serverSPIFFEID {
            try AccessRules(spiffeIDs: [serverSPIFFEID]).validate(flag: "--server-spiffe-id")
        }
        var tls = TLSConfiguration.makeClientConfiguration()
        policy.apply(to: &tls)
        tls.certificateChain = material.identity.nioChain.map { .certificate($0) }
        tls.privateKey = .privateKey(material.identity.nioKey)
        tls.trustRoots = .certificates(material.trust.nioCertificates)  // never the system roots
        tls.certificateVerification = .noHostnameVerification  // the name is checked strictly by PeerVerifier
        do {
            context = try NIOSSLContext(configuration: tls)
        } catch {
            throw SecureChannelError(.configuration, "the TLS stack refused the client configuration: \(error)")
        }
        var verifier = PeerVerifier(
            trust: material.trust, purpose: .server, serverName: serverSPIFFEID == nil ? serverName : nil, rules: nil,
            revocation: material.revocation)
        verifier.serverSPIFFEID = serverSPIFFEID
        self.verifier = verifier
        self.serverName = serverName
        self.timeout = timeout
    }

    /// The setup for a message client's configuration.
    package init(_ configuration: MessageClientConfiguration) throws {
        if configuration.checksOwnCertificate { try configuration.identity.checkFits(.client) }
        try self.init(
            material: TLSMaterial(
                identity: configuration.identity, trust: configuration.trust, revocation: configuration.revocation),
            serverName: configuration.expectedServerName, serverSPIFFEID: configuration.serverSPIFFEID,
            tls: configuration.tls, timeout: configuration.timeout)
    }

    /// Adds the TLS handlers to a new client channel; `record.handshake` completes when the server is verified.
    package func addHandlers(to channel: any Channel, record: ConnectionRecord) throws {
        let pipeline = channel.pipeline.syncOperations
        let isIP = (try? IssuanceRequest.ipBytes(serverName)) != nil
        let handler = try NIOSSLClientHandler(
            context: context, serverHostname: isIP ? nil : serverName,  // no IP literals in SNI
            customVerificationCallback: verifier.callback(record: record))
        let handshake = channel.eventLoop.makePromise(of: Void.self)
        record.handshake = handshake.futureResult
        try pipeline.addHandler(HandshakeObserver(side: .client, record: record))
        try pipeline.addHandler(handler)
        try pipeline.addHandler(HandshakeEventsHandler(record: record, handshake: handshake))
        try pipeline.addHandler(HandshakeTimeoutHandler(timeout: timeout, record: record))
    }

    /// Waits for the handshake of a channel set up by ``addHandlers(to:record:)``; closes it and throws a
    /// one-line error if the server was not verified.
    package static func awaitVerifiedServer(_ channel: any Channel, record: ConnectionRecord) async throws
        -> PeerIdentity
    {
        try await verifiedServer(channel, record: record).get()
    }

    /// ``awaitVerifiedServer(_:record:)`` as a future, for code on the event loop.
    package static func verifiedServer(_ channel: any Channel, record: ConnectionRecord) -> EventLoopFuture<
        PeerIdentity
    > {
        let handshake = record.handshake ?? channel.eventLoop.makeSucceededVoidFuture()
        return handshake.flatMapErrorThrowing { error in
            guard let error = error as? SecureChannelError else { throw error }
            channel.close(promise: nil)
            if let failure = record.verificationFailure {
                throw SecureChannelError(.serverCertificateRejected, failure)
            }
            throw error
        }.flatMapThrowing {
            guard let server = record.identity else {
                channel.close(promise: nil)
                throw SecureChannelError(
                    .serverCertificateRejected, record.verificationFailure ?? "server certificate not verified")
            }
            return server
        }
    }

    /// A one-line reason for a failed connect, with what to check.
    package static func connectText(_ error: any Error) -> String {
        SocketErrorText.connect(error, hints: true)
    }
}
