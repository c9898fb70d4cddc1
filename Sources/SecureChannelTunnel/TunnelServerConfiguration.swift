import CoreMetrics
import NIOCore
import SecureChannel

/// A tunnel server: terminates mTLS on `host:port` and forwards the verified plaintext stream to `target`.
public struct TunnelServerConfiguration: Sendable {
    /// The defaults, each written once: the initializer, the configuration file and the help text read them.
    public enum Defaults {
        /// Connections beyond this many are refused at once.
        public static let maximumConnections = 1024
        /// Time allowed for the TLS handshake.
        public static let handshakeTimeout: TimeAmount = .seconds(10)
        /// A tunnel with no traffic either way for this long is closed.
        public static let idleTimeout: TimeAmount = .seconds(3600)
        /// Time allowed to connect to the target.
        public static let connectTimeout: TimeAmount = .seconds(5)
        /// At shutdown, open tunnels get this long to finish before they are closed.
        public static let shutdownGracePeriod: TimeAmount = .seconds(5)
        /// Warn when our certificate or a CA expires within this many days.
        public static let expiryWarningDays = 14
    }

    /// Address to listen on (TLS side).
    public var host: String
    /// Port to listen on; 0 picks a free one.
    public var port: Int
    /// Where the plaintext goes. Must be local unless ``allowRemoteTarget``.
    public var target: TunnelEndpoint
    /// Certificate, key, CA and CRL files (watched and reloaded).
    public var files: TLSMaterialFiles
    /// Which verified clients may connect.
    public var rules: AccessRules
    /// Send a PROXY protocol v2 header with the client's address and verified identity.
    public var proxyProtocol: Bool
    /// For HTTP/1.1 targets: the request header that carries the verified identity (Envoy's
    /// `X-Forwarded-Client-Cert` format); any header of that name the client sent is removed. nil: bytes as they are.
    public var httpIdentityHeader: String?
    /// `--unsafe-target`: allow a non-loopback target (the plaintext then crosses a network).
    public var allowRemoteTarget: Bool
    /// TLS versions.
    public var tls: TLSPolicy
    /// Limits.
    public var maximumConnections: Int
    /// Time allowed for the TLS handshake.
    public var handshakeTimeout: TimeAmount
    /// A tunnel with no traffic either way for this long is closed.
    public var idleTimeout: TimeAmount
    /// Time allowed to connect to the target.
    public var connectTimeout: TimeAmount
    /// At shutdown, open tunnels get this long to finish before they are closed.
    public var shutdownGracePeriod = Defaults.shutdownGracePeriod
    /// Expect a PROXY protocol v2 header from a load balancer before TLS (see ``MessageServerConfiguration``).
    public var acceptProxyProtocol = false
    /// Set SO_REUSEPORT (see ``MessageServerConfiguration/reusePort``).
    public var reusePort = false
    /// Warn when our certificate or a CA expires within this many days.
    public var expiryWarningDays = Defaults.expiryWarningDays
    /// Where metrics go; nil: `MetricsSystem.factory`.
    public var metricsFactory: (any MetricsFactory)?
    /// The `listener` label of the tunnel's metrics (the tunnel's name in a config file).
    public var metricsLabel = "tunnel"

    /// A configuration with secure defaults.
    public init(
        host: String, port: Int, target: TunnelEndpoint, files: TLSMaterialFiles, rules: AccessRules,
        proxyProtocol: Bool = false, allowRemoteTarget: Bool = false, tls: TLSPolicy = .default,
        maximumConnections: Int = Defaults.maximumConnections, handshakeTimeout: TimeAmount = Defaults.handshakeTimeout,
        idleTimeout: TimeAmount = Defaults.idleTimeout, connectTimeout: TimeAmount = Defaults.connectTimeout
    ) {
        self.host = host
        self.port = port
        self.target = target
        self.files = files
        self.rules = rules
        self.proxyProtocol = proxyProtocol
        self.allowRemoteTarget = allowRemoteTarget
        self.tls = tls
        self.maximumConnections = maximumConnections
        self.handshakeTimeout = handshakeTimeout
        self.idleTimeout = idleTimeout
        self.connectTimeout = connectTimeout
    }

    /// Throws a one-line error for an unsafe or unusable configuration.
    public func validate() throws {
        guard target.isLocal || allowRemoteTarget else {
            throw SecureChannelError(
                .configuration,
                "target \(target) is not on this machine, so the plaintext would cross the network; use a loopback address or a UNIX socket, or allow a remote target explicitly"
            )
        }
        try acceptorSettings.validate()
        if let name = httpIdentityHeader {
            let token = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
            guard !name.isEmpty, name.allSatisfy(token.contains) else {
                throw SecureChannelError(
                    .configuration,
                    "'\(name)' is not an HTTP header name; use letters, digits and '-', e.g. X-Client-Identity")
            }
            guard !proxyProtocol else {
                throw SecureChannelError(
                    .configuration,
                    "the HTTP identity header and the PROXY protocol header both speak first to the target: choose one")
            }
        }
    }

    /// The accepting side's settings.
    var acceptorSettings: AcceptorSettings {
        var settings = AcceptorSettings(
            listen: .tcp(host: host, port: port), handshakeTimeout: handshakeTimeout, idleTimeout: idleTimeout,
            maximumConnections: maximumConnections, shutdownGracePeriod: shutdownGracePeriod,
            expiryWarningDays: expiryWarningDays)
        settings.allowHalfClosure = true
        settings.acceptProxyProtocol = acceptProxyProtocol
        settings.reusePort = reusePort
        settings.metricsFactory = metricsFactory
        settings.metricsLabel = metricsLabel
        return settings
    }
}
