import CoreMetrics
import NIOCore
import SecureChannel

/// A tunnel client: accepts plaintext on `listen` and originates mTLS to `target`, verifying its name.
public struct TunnelClientConfiguration: Sendable {
    /// Where local programs connect (plaintext). Must be local unless ``allowRemoteListen``.
    public var listen: TunnelEndpoint
    /// The tunnel server (TLS).
    public var targetHost: String
    /// The tunnel server's port.
    public var targetPort: Int
    /// The name the server certificate must carry; defaults to `targetHost`.
    public var serverName: String?
    /// Certificate, key, CA and CRL files.
    public var files: TLSMaterialFiles
    /// `--unsafe-listen`: accept plaintext from other machines.
    public var allowRemoteListen: Bool
    /// TLS versions.
    public var tls: TLSPolicy
    /// Time allowed to connect and handshake with the server.
    public var connectTimeout: TimeAmount
    /// At shutdown, open tunnels get this long to finish before they are closed.
    public var shutdownGracePeriod: TimeAmount = .seconds(5)
    /// Where metrics go; nil: `MetricsSystem.factory`.
    public var metricsFactory: (any MetricsFactory)?
    /// The `listener` label of the tunnel's metrics (the tunnel's name in a config file).
    public var metricsLabel = "tunnel"

    /// A configuration with secure defaults.
    public init(listen: TunnelEndpoint, targetHost: String, targetPort: Int, serverName: String? = nil,
                files: TLSMaterialFiles, allowRemoteListen: Bool = false, tls: TLSPolicy = .default,
                connectTimeout: TimeAmount = .seconds(10)) {
        self.listen = listen
        self.targetHost = targetHost
        self.targetPort = targetPort
        self.serverName = serverName
        self.files = files
        self.allowRemoteListen = allowRemoteListen
        self.tls = tls
        self.connectTimeout = connectTimeout
    }

    /// Throws a one-line error for an unsafe configuration.
    public func validate() throws {
        guard listen.isLocal || allowRemoteListen else {
            throw SecureChannelError(.configuration,
                "listen address \(listen) is reachable from other machines, which could then use this tunnel's identity; listen on a loopback address or a UNIX socket, or pass --unsafe-listen")
        }
    }
}
