import CoreMetrics
import Foundation
import Logging
import NIOCore

/// What an ``Acceptor`` needs besides its material: where to listen, limits, timeouts and labels. Shared by
/// `serve`, `tunnel server` and `tunnel client`; each default is the one named in the library configuration
/// that fills it (``MessageServerConfiguration``, the tunnel configurations).
package struct AcceptorSettings: Sendable {
    package var listen: SocketEndpoint
    package var handshakeTimeout: TimeAmount
    package var idleTimeout: TimeAmount
    package var maximumConnections: Int
    package var shutdownGracePeriod: TimeAmount
    package var expiryWarningDays: Int
    /// Let peers half-close (tunnels forward a half-close; the message server does not need it).
    package var allowHalfClosure = false
    /// Expect a PROXY protocol v2 header before TLS on every connection (behind HAProxy `send-proxy-v2`).
    package var acceptProxyProtocol = false
    /// SO_REUSEPORT: several processes listen on the same port and the kernel spreads connections among them.
    package var reusePort = false
    /// The `listener` label of this listener's metrics.
    package var metricsLabel = "serve"
    /// Where metrics go; nil: `MetricsSystem.factory`.
    package var metricsFactory: (any MetricsFactory)?
    /// Where accepted connections are forwarded (`HOST:PORT`), for the log lines of a tunnel client.
    package var destination: String?

    package init(
        listen: SocketEndpoint, handshakeTimeout: TimeAmount, idleTimeout: TimeAmount, maximumConnections: Int,
        shutdownGracePeriod: TimeAmount, expiryWarningDays: Int
    ) {
        self.listen = listen
        self.handshakeTimeout = handshakeTimeout
        self.idleTimeout = idleTimeout
        self.maximumConnections = maximumConnections
        self.shutdownGracePeriod = shutdownGracePeriod
        self.expiryWarningDays = expiryWarningDays
    }

    /// Throws a one-line error for a limit or timeout out of range.
    package func validate() throws {
        guard maximumConnections > 0 else {
            throw SecureChannelError(.configuration, "the connection limit must be positive")
        }
        guard handshakeTimeout > .zero, idleTimeout > .zero, shutdownGracePeriod >= .zero else {
            throw SecureChannelError(.configuration, "timeouts must be positive")
        }
        guard expiryWarningDays >= 0 else {
            throw SecureChannelError(.configuration, "the expiry warning must be 0 days or more")
        }
        if case .tcp(_, let port) = listen, !(0...65535).contains(port) {
            throw SecureChannelError(.configuration, "port \(port) is out of range 0-65535")
        }
    }
}
