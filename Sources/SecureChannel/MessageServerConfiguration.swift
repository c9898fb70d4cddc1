import CoreMetrics
import NIOCore

/// Everything a ``MessageServer`` needs. A value type with secure defaults: TLS 1.3 only, client certificates
/// required and verified against `trust` only, 64 KiB messages, bounded handshakes and idle time.
public struct MessageServerConfiguration: Sendable {
    /// Address to bind, e.g. `127.0.0.1` or `::`.
    public var host: String
    /// Port to bind; 0 picks a free one (read it back from ``MessageServer/listeningAddress()``).
    public var port: Int
    /// The server's certificate chain and key.
    public var identity: TLSIdentity
    /// The CA(s) client certificates must chain to.
    public var trust: TrustAnchors
    /// CRLs enforced on client certificates.
    public var revocation: RevocationList?
    /// When set, these files are watched (and re-read on SIGHUP): changes take effect within 2 s for new
    /// connections, and open connections of clients that became revoked are closed. A failed reload keeps the
    /// current material.
    public var reloadFiles: TLSMaterialFiles?
    /// Warn when our certificate or a CA expires within this many days.
    public var expiryWarningDays: Int
    /// Which verified clients may connect. Must not be empty.
    public var rules: AccessRules
    /// TLS versions and parameters.
    public var tls: TLSPolicy
    /// Message framing.
    public var framing: Framing
    /// Largest message accepted; longer ones get an `ERR` reply and the connection is closed.
    public var maximumMessageBytes: Int
    /// Time allowed for the TLS handshake.
    public var handshakeTimeout: TimeAmount
    /// A connection with no traffic for this long is closed.
    public var idleTimeout: TimeAmount
    /// Connections beyond this many are refused at once.
    public var maximumConnections: Int
    /// How long in-flight replies may take to finish at shutdown.
    public var shutdownGracePeriod: TimeAmount
    /// Expect a PROXY protocol v2 header (HAProxy `send-proxy-v2`) before TLS on every connection; logs then
    /// show the client's address from it. Connections without one are refused. Only behind a proxy.
    public var acceptProxyProtocol = false
    /// Set SO_REUSEPORT, so that several server processes can listen on the same address and port (the kernel
    /// spreads new connections among them): restarts without a gap, or one process per core.
    public var reusePort = false
    /// Where the server's metrics go (``PrometheusEndpoint/factory``); nil: `MetricsSystem.factory`.
    public var metricsFactory: (any MetricsFactory)?
    /// The `listener` label of the server's metrics.
    public var metricsLabel = "serve"

    /// A configuration with secure defaults.
    public init(
        host: String = "127.0.0.1", port: Int = 0, identity: TLSIdentity, trust: TrustAnchors, rules: AccessRules,
        revocation: RevocationList? = nil, reloadFiles: TLSMaterialFiles? = nil, expiryWarningDays: Int = 14,
        tls: TLSPolicy = .default, framing: Framing = .lines,
        maximumMessageBytes: Int = Framing.defaultMaximumMessageBytes, handshakeTimeout: TimeAmount = .seconds(10),
        idleTimeout: TimeAmount = .seconds(300), maximumConnections: Int = 1024, shutdownGracePeriod: TimeAmount = .seconds(5)
    ) {
        self.host = host
        self.port = port
        self.identity = identity
        self.trust = trust
        self.rules = rules
        self.revocation = revocation
        self.reloadFiles = reloadFiles
        self.expiryWarningDays = expiryWarningDays
        self.tls = tls
        self.framing = framing
        self.maximumMessageBytes = maximumMessageBytes
        self.handshakeTimeout = handshakeTimeout
        self.idleTimeout = idleTimeout
        self.maximumConnections = maximumConnections
        self.shutdownGracePeriod = shutdownGracePeriod
    }

    /// A configuration from files that are watched and reloaded.
    public init(host: String, port: Int, files: TLSMaterialFiles, rules: AccessRules) throws {
        let material = try files.load()
        self.init(host: host, port: port, identity: material.identity, trust: material.trust, rules: rules,
                  revocation: material.revocation, reloadFiles: files)
    }

    /// The accepting side's settings.
    var listenerSettings: ListenerSettings {
        var settings = ListenerSettings(
            host: host, port: port, material: TLSMaterial(identity: identity, trust: trust, revocation: revocation),
            reloadFiles: reloadFiles, rules: rules, tls: tls, handshakeTimeout: handshakeTimeout, idleTimeout: idleTimeout,
            maximumConnections: maximumConnections, shutdownGracePeriod: shutdownGracePeriod,
            expiryWarningDays: expiryWarningDays)
        settings.acceptProxyProtocol = acceptProxyProtocol
        settings.reusePort = reusePort
        settings.metricsFactory = metricsFactory
        settings.metricsLabel = metricsLabel
        return settings
    }

    /// Throws a one-line error for an unusable configuration.
    public func validate() throws {
        guard !rules.isEmpty else {
            throw SecureChannelError(.configuration,
                "no client is allowed: give --allow-cn, --allow-dns or --allow-uri, or --allow-any-client to accept any client of the CA")
        }
        guard (0...65535).contains(port) else { throw SecureChannelError(.configuration, "port \(port) is out of range 0-65535") }
        guard maximumMessageBytes > 0 else { throw SecureChannelError(.configuration, "--max-message-bytes must be positive") }
        guard maximumConnections > 0 else { throw SecureChannelError(.configuration, "--max-connections must be positive") }
        guard handshakeTimeout > .zero, idleTimeout > .zero else {
            throw SecureChannelError(.configuration, "timeouts must be positive")
        }
    }
}
