import Foundation
import SecureChannel

/// What `securechannel serve` runs, from its flags and/or the `serve:` section of a configuration file: the
/// server's configuration plus the process options (log format, metrics address).
public struct ServeSettings: Sendable {
    /// The server.
    public var server: MessageServerConfiguration
    /// `log-format`: `text` or `json`.
    public var logFormat: String
    /// `metrics`: where `/metrics` and `/healthz` listen, if anywhere.
    public var metrics: (host: String, port: Int)?

    /// The keys of a `serve:` section (the `serve` flags, without the dashes).
    public static let keys: Set<String> = [
        "listen", "cert", "key", "ca", "crl", "crl-expired", "tls-min", "keylog", "framing", "max-message-bytes",
        "allow-cn",
        "allow-dns", "allow-uri", "allow-spiffe-id", "allow-email", "allow-ou", "allow-spki-sha256", "allow-any-client",
        "handshake-timeout", "idle-timeout", "max-connections",
        "expiry-warning-days", "log-format", "metrics", "accept-proxy-protocol", "drain-timeout", "reuse-port",
        "renew-from", "crl-url", "crl-refresh",
    ]

    /// Checks every value, loads the files, and builds the configuration. A key that is absent keeps the default
    /// of ``MessageServerConfiguration``.
    public init(fields: ConfigFields) throws {
        try fields.checkKeys(Self.keys, what: "serve")
        guard
            case .tcp(let host, let port) = try fields.endpoint(
                "listen", hint: "the address to listen on (HOST:PORT)", allowUnix: false)
        else {
            throw fields.failure("listen", "must be HOST:PORT")
        }
        var server = try MessageServerConfiguration(
            host: host, port: port, files: try fields.materialFiles(for: .server), rules: try fields.accessRules())
        server.tls = try fields.tlsPolicy()
        if let framing = try fields.choice("framing", Framing.allCases.map(\.rawValue)) {
            server.framing = Framing(rawValue: framing) ?? .lines
        }
        if let value = try fields.integer("max-message-bytes") { server.maximumMessageBytes = value }
        if let value = try fields.seconds("handshake-timeout") { server.handshakeTimeout = value }
        try fields.applyListenerKeys(to: &server)
        server.acceptProxyProtocol = try fields.flag("accept-proxy-protocol")
        server.reusePort = try fields.flag("reuse-port")
        try server.validate()
        self.server = server
        logFormat = try fields.choice("log-format", ["text", "json"]) ?? "text"
        metrics = try fields.hostPort("metrics")
    }
}
