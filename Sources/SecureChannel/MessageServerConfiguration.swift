import CoreMetrics
import NIOCore

/// Everything a ``MessageServer`` needs. A value type with secure defaults: TLS 1.3 only, client certificates
/// required and verified against `trust` only, 64 KiB messages, bounded handshakes and idle time.
public struct MessageServerConfiguration: Sendable {
    /// The defaults, each written once: the initializer, the configuration file and the help text read them.
    public enum Defaults {
        /// Time allowed for the TLS handshake.
        public static let handshakeTimeout: TimeAmount = .seconds(10)
        /// A connection with no traffic for this long is closed.
        public static let idleTimeout: TimeAmount = .seconds(300)
        /// Connections beyond this many are refused at once.
        public static let maximumConnections = 1024
        /// How long in-flight replies may take to finish at shutdown.
        public static let shutdownGracePeriod: TimeAmount = .seconds(5)
        /// Warn when our certificate or a CA expires within this many days.
        public static let expiryWarningDays = 14
    }

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
        revocation: RevocationList? = nil, reloadFiles: TLSMaterialFiles? = nil,
        expiryWarningDays: Int = Defaults.expiryWarningDays,
        tls: TLSPolicy = .default, framing: Framing = .lines,
        maximumMessageBytes: Int = Framing.defaultMaximumMessageBytes,
        handshakeTimeout: TimeAmount = Defaults.handshakeTimeout, idleTimeout: TimeAmount = Defaults.idleTimeout,
        maximumConnections: Int = Defaults.maximumConnections,
        shutdownGracePeriod: TimeAmount = Defaults.shutdownGracePeriod
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
        self.init(
            host: host, port: port, identity: material.identity, trust: material.trust, rules: rules,
            revocation: material.revocation, reloadFiles: files)
    }

    /// The accepting side's settings.
    var acceptorSettings: AcceptorSettings {
        var settings = AcceptorSettings(
            listen: .tcp(host: host, port: port), handshakeTimeout: handshakeTimeout, idleTimeout: idleTimeout,
            maximumConnections: maximumConnections, shutdownGracePeriod: shutdownGracePeriod,
            expiryWarningDays: expiryWarningDays)
        settings.acceptProxyProtocol = acceptProxyProtocol
        settings.reusePort = reusePort
        settings.metricsFactory = metricsFactory
        settings.metricsLabel = metricsLabel
        return settings
    }

    /// The material store: our identity, the CAs and CRLs, reloaded from ``reloadFiles`` when given.
    func makeStore() throws -> MaterialStore {
        try MaterialStore(
            material: TLSMaterial(identity: identity, trust: trust, revocation: revocation),
            files: reloadFiles, role: .server(rules: rules), tls: tls)
    }

    /// Throws a one-line error for an unusable configuration.
    public func validate() throws {
        guard maximumMessageBytes > 0 else {
            throw SecureChannelError(.configuration, "the message size limit must be positive")
        }
        try acceptorSettings.validate()
    }
}
