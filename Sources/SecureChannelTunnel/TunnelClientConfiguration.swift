import CoreMetrics
import NIOCore
import SecureChannel

/// A tunnel client: accepts plaintext on `listen` and originates mTLS to `target`, verifying its name.
public struct TunnelClientConfiguration: Sendable {
    /// The defaults, each written once: the initializer, the configuration file and the help text read them.
    public enum Defaults {
        /// Time allowed to connect and handshake with the server.
        public static let connectTimeout: TimeAmount = .seconds(10)
        /// A tunnel with no traffic either way for this long is closed.
        public static let idleTimeout: TimeAmount = .seconds(3600)
        /// Local connections beyond this many are refused at once.
        public static let maximumConnections = 1024
        /// At shutdown, open tunnels get this long to finish before they are closed.
        public static let shutdownGracePeriod: TimeAmount = .seconds(5)
        /// Warn when our certificate or a CA expires within this many days.
        public static let expiryWarningDays = 14
    }

    /// Where local programs connect (plaintext). Must be local unless ``allowRemoteListen``.
    public var listen: TunnelEndpoint
    /// The tunnel server (TLS).
    public var targetHost: String
    /// The tunnel server's port.
    public var targetPort: Int
    /// The name the server certificate must carry; defaults to `targetHost`.
    public var serverName: String?
    /// Verify the tunnel server by this SPIFFE ID pattern instead of by its name.
    public var serverSPIFFEID: String?
    /// Certificate, key, CA and CRL files (watched and reloaded: new connections use the new material).
    public var files: TLSMaterialFiles
    /// Accept plaintext from other machines (which could then use this tunnel's identity).
    public var allowRemoteListen: Bool
    /// TLS versions.
    public var tls: TLSPolicy
    /// Time allowed to connect and handshake with the server.
    public var connectTimeout: TimeAmount
    /// A tunnel with no traffic either way for this long is closed.
    public var idleTimeout = Defaults.idleTimeout
    /// Local connections beyond this many are refused at once.
    public var maximumConnections = Defaults.maximumConnections
    /// At shutdown, open tunnels get this long to finish before they are closed.
    public var shutdownGracePeriod = Defaults.shutdownGracePeriod
    /// Warn when our certificate or a CA expires within this many days.
    public var expiryWarningDays = Defaults.expiryWarningDays
    /// Where metrics go; nil: `MetricsSystem.factory`.
    public var metricsFactory: (any MetricsFactory)?
    /// The `listener` label of the tunnel's metrics (the tunnel's name in a config file).
    public var metricsLabel = "tunnel"

    /// A configuration with secure defaults.
    public init(
        listen: TunnelEndpoint, targetHost: String, targetPort: Int, serverName: String? = nil,
        files: TLSMaterialFiles, allowRemoteListen: Bool = false, tls: TLSPolicy = .default,
        connectTimeout: TimeAmount = Defaults.connectTimeout
    ) {
        self.listen = listen
        self.targetHost = targetHost
        self.targetPort = targetPort
        self.serverName = serverName
        self.files = files
        self.allowRemoteListen = allowRemoteListen
        self.tls = tls
        self.connectTimeout = connectTimeout
    }

    /// `HOST:PORT` of the tunnel server.
    public var target: String { SocketEndpoint.format(host: targetHost, port: targetPort) }

    /// Throws a one-line error for an unsafe configuration.
    public func validate() throws {
        guard listen.isLocal || allowRemoteListen else {
            throw SecureChannelError(
                .configuration,
                "listen address \(listen) is reachable from other machines, which could then use this tunnel's identity; listen on a loopback address or a UNIX socket, or allow a remote listen address explicitly"
            )
        }
        guard connectTimeout > .zero else { throw SecureChannelError(.configuration, "timeouts must be positive") }
        try acceptorSettings.validate()
    }

    /// The accepting side's settings (the handshake is the outgoing one: its time is ``connectTimeout``).
    var acceptorSettings: AcceptorSettings {
        var settings = AcceptorSettings(
            listen: listen, handshakeTimeout: connectTimeout, idleTimeout: idleTimeout,
            maximumConnections: maximumConnections, shutdownGracePeriod: shutdownGracePeriod,
            expiryWarningDays: expiryWarningDays)
        settings.allowHalfClosure = true
        settings.metricsFactory = metricsFactory
        settings.metricsLabel = metricsLabel
        settings.destination = target
        return settings
    }
}
