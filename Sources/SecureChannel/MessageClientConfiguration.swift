import NIOCore

/// Everything a ``MessageClient`` needs, with secure defaults: TLS 1.3, the server verified against `trust`
/// only and by the name asked for.
public struct MessageClientConfiguration: Sendable {
    /// Host to connect to.
    public var host: String
    /// Port to connect to.
    public var port: Int
    /// The name the server's certificate must carry (a DNS name or an IP address); defaults to `host`.
    public var serverName: String?
    /// Verify the server by this SPIFFE ID pattern instead of by ``serverName`` (which then only goes into SNI).
    public var serverSPIFFEID: String?
    /// Our client certificate and key.
    public var identity: TLSIdentity
    /// The CA(s) the server's certificate must chain to.
    public var trust: TrustAnchors
    /// CRLs the server's certificate is checked against.
    public var revocation: RevocationList?
    /// TLS versions and parameters.
    public var tls: TLSPolicy
    /// Message framing; must match the server's.
    public var framing: Framing
    /// Largest reply accepted.
    public var maximumMessageBytes: Int
    /// Time allowed to connect and handshake, and to wait for each reply.
    public var timeout: TimeAmount
    /// Refuse, before connecting, to present a certificate that is not a client certificate (a server's or a
    /// CA's). Only tests that check how a server refuses such a certificate turn it off.
    package var checksOwnCertificate = true

    /// A configuration with secure defaults.
    public init(
        host: String, port: Int, serverName: String? = nil, identity: TLSIdentity, trust: TrustAnchors,
        revocation: RevocationList? = nil, tls: TLSPolicy = .default, framing: Framing = .lines,
        maximumMessageBytes: Int = Framing.defaultMaximumMessageBytes, timeout: TimeAmount = .seconds(10)
    ) {
        self.revocation = revocation
        self.host = host
        self.port = port
        self.serverName = serverName
        self.identity = identity
        self.trust = trust
        self.tls = tls
        self.framing = framing
        self.maximumMessageBytes = maximumMessageBytes
        self.timeout = timeout
    }

    /// The name verified against the server's certificate.
    public var expectedServerName: String { serverName ?? host }
}
