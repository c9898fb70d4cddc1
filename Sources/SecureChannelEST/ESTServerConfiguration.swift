import CoreMetrics
import Foundation
import NIOCore
import SecureChannel

/// What `ca serve` needs besides the CA: where to listen, its TLS files, lifetimes and limits.
public struct ESTServerConfiguration: Sendable {
    /// Where to listen.
    public var listen: SocketEndpoint
    /// The listener's certificate and key (a server certificate of this CA), the CA bundle client certificates
    /// are verified against (the root), and CRLs.
    public var files: TLSMaterialFiles
    /// TLS versions.
    public var tls: TLSPolicy = .default
    /// The lifetime of a certificate whose token names none (seconds).
    public var defaultLifetime: TimeInterval = 24 * 3600
    /// No certificate is issued for longer (seconds); nil: as long as the token or the renewed certificate says.
    public var maximumLifetime: TimeInterval?
    /// Requests a minute from one client address before 429.
    public var requestsPerMinute = 600
    /// A CRL handed out by `GET crl` is signed again once it is this old (seconds).
    public var crlRefresh: TimeInterval = 60
    /// The nextUpdate of those CRLs, in days.
    public var crlDays = 1
    /// Limits and timeouts, as `serve`'s.
    public var handshakeTimeout: TimeAmount = .seconds(10)
    public var idleTimeout: TimeAmount = .seconds(60)
    public var maximumConnections = 1000
    public var shutdownGracePeriod: TimeAmount = .seconds(10)
    /// Where metrics go; nil: `MetricsSystem.factory`.
    public var metricsFactory: (any MetricsFactory)?

    /// The largest request body read (a CSR is a few hundred bytes; base64 of the 16 KiB CSR limit fits).
    public static let maximumBodyBytes = 24 * 1024

    /// Listens on `listen` with `files`; the rest defaults.
    public init(listen: SocketEndpoint, files: TLSMaterialFiles) {
        self.listen = listen
        self.files = files
    }
}
