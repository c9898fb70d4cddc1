import Foundation
import NIOCore
import SecureChannel
import SecureChannelPKI
import SecureChannelTunnel
import Yams

/// The one configuration file format of `securechannel serve --config` and `securechannel tunnel --config`
/// (YAML). Every key is named like the flag it stands for, without the dashes; flags given with `--config`
/// override the file's values.
///
/// ```yaml
/// log-format: json              # top level: `tunnel --config`'s own flags
/// metrics: 127.0.0.1:9090
/// serve:                        # `serve --config FILE`: any serve flag
///   listen: 0.0.0.0:8443
///   cert: pki/Jill.crt
///   key: pki/Jill.key
///   ca: pki/ca.crt
///   allow-cn: [Chris]
/// tunnels:                      # `tunnel --config FILE`: tunnel server/client flags, plus name and mode
///   - name: redis
///     mode: server              # or client
///     listen: 0.0.0.0:6380
///     target: 127.0.0.1:6379    # or unix:/run/redis.sock
///     cert: pki/Jill.crt
///     key: pki/Jill.key
///     ca: pki/ca.crt
///     crl: [pki/crl.pem]
///     allow-cn: [Chris]
/// ```
/// Relative paths are resolved against the file's directory. Errors name the section and the line.
public struct ConfigFile: Sendable {
    /// One tunnel from the file.
    public enum Tunnel: Sendable {
        /// A TLS-terminating end.
        case server(name: String, TunnelServerConfiguration)
        /// A TLS-originating end.
        case client(name: String, TunnelClientConfiguration)

        /// The entry's name.
        public var name: String {
            switch self {
            case .server(let name, _), .client(let name, _): return name
            }
        }
    }

    /// The file's path (for messages).
    public let source: String
    /// The top-level keys other than the sections: `tunnel --config`'s `log-format` and `metrics`.
    public let topLevel: ConfigFields
    /// The `serve:` section, if any.
    public let serve: ConfigFields?
    /// Whether the file has a `tunnels:` list.
    public var hasTunnels: Bool { !tunnelEntries.isEmpty }
    /// The `tunnels:` entries, with the line each starts on.
    let tunnelEntries: [(line: Int, fields: ConfigFields)]

    static let topLevelKeys: Set<String> = ["serve", "tunnels", "log-format", "metrics"]
    static let commonTunnelKeys: Set<String> = [
        "name", "mode", "listen", "target", "cert", "key", "ca", "crl", "crl-expired", "tls-min", "keylog",
        "connect-timeout",
        "drain-timeout", "max-connections", "idle-timeout", "expiry-warning-days", "renew-from", "crl-url",
        "crl-refresh",
    ]
    /// The keys of a `mode: server` tunnel (the `tunnel server` flags).
    public static let serverKeys: Set<String> = commonTunnelKeys.union([
        "allow-cn", "allow-dns", "allow-uri", "allow-spiffe-id", "allow-email", "allow-ou", "allow-spki-sha256",
        "allow-any-client", "proxy-protocol", "unsafe-target",
        "handshake-timeout", "accept-proxy-protocol", "reuse-port", "http-identity-header",
    ])
    /// The keys of a `mode: client` tunnel (the `tunnel client` flags).
    public static let clientKeys: Set<String> = commonTunnelKeys.union([
        "server-name", "server-spiffe-id", "unsafe-listen",
    ])

    /// Reads and parses a file; nothing is loaded or checked beyond its shape until a section is used.
    public init(path: String) throws {
        guard SecureFile.exists(path) || path == "-" else {
            throw SecureChannelError(.configuration, "the configuration file \(path) does not exist; check the path")
        }
        let text = String(decoding: try SecureFile.read(path), as: UTF8.self)
        let base = URL(fileURLWithPath: path).deletingLastPathComponent().path
        try self.init(yaml: text, source: path, baseDirectory: base)
    }

    /// Parses YAML text.
    public init(yaml: String, source: String, baseDirectory: String) throws {
        self.source = source
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch {
            throw SecureChannelError(.configuration, "\(source): not valid YAML: \(error)")
        }
        guard let mapping = root?.mapping else {
            throw SecureChannelError(
                .configuration,
                "\(source): expected a mapping with 'serve:' and/or 'tunnels:' (see 'securechannel config --help')")
        }
        var top = Node.Mapping([])
        var serve: ConfigFields?
        var entries: [(Int, ConfigFields)] = []
        for (key, node) in mapping {
            let line = key.mark?.line ?? 0
            switch key.string {
            case "serve":
                guard let section = node.mapping else {
                    throw SecureChannelError(
                        .configuration, "\(source) line \(line): 'serve' must be a mapping of flag names to values")
                }
                serve = try Self.wrap(source, "serve") {
                    try ConfigFields(mapping: section, baseDirectory: baseDirectory)
                }
            case "tunnels":
                guard let list = node.sequence, !list.isEmpty else {
                    throw SecureChannelError(
                        .configuration, "\(source) line \(line): 'tunnels' must be a list with at least one entry")
                }
                for (index, item) in list.enumerated() {
                    let itemLine = item.mark?.line ?? 0
                    guard let section = item.mapping else {
                        throw SecureChannelError(
                            .configuration,
                            "\(source): tunnel #\(index + 1) (line \(itemLine)): each entry must be a mapping of keys to values"
                        )
                    }
                    entries.append(
                        (
                            itemLine,
                            try Self.wrap(source, "tunnel #\(index + 1) (line \(itemLine))") {
                                try ConfigFields(mapping: section, baseDirectory: baseDirectory)
                            }
                        ))
                }
            case let name? where !Self.topLevelKeys.contains(name):
                let hint = Suggestion.closest(to: name, in: Self.topLevelKeys).map { "did you mean '\($0)'? " } ?? ""
                throw SecureChannelError(
                    .configuration,
                    "\(source) line \(line): unknown section '\(name)'; \(hint)(known: serve, tunnels, log-format, metrics)"
                )
            case let name?:
                top[Node(name)] = node
            case nil:
                throw SecureChannelError(.configuration, "\(source) line \(line): keys must be names")
            }
        }
        let topLevel = try Self.wrap(source, "top level") {
            try ConfigFields(mapping: top, baseDirectory: baseDirectory)
        }
        try Self.wrap(source, "top level") {
            try topLevel.checkKeys(Self.topLevelKeys, what: "the top level (sections: serve, tunnels)")
        }
        self.topLevel = topLevel
        guard serve != nil || !entries.isEmpty else {
            throw SecureChannelError(
                .configuration, "\(source): nothing to run: add a 'serve:' section or a 'tunnels:' list")
        }
        self.serve = serve
        tunnelEntries = entries
    }

    /// Prefixes errors with the file and the section.
    static func wrap<T>(_ source: String, _ section: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as SecureChannelError {
            throw SecureChannelError(error.code, "\(source): \(section): \(error.message)")  // the code beneath stays
        } catch let error as PKIError {
            throw PKIError(error.code, "\(source): \(section): \(error.message)")
        }
    }

    /// The tunnels, each checked (keys, values, files, safety); the first bad one is reported with its name and
    /// line. Throws if the file has no `tunnels:`.
    public func tunnels() throws -> [Tunnel] {
        guard !tunnelEntries.isEmpty else {
            throw SecureChannelError(.configuration, "\(source): no 'tunnels:' list; tunnel --config runs tunnels")
        }
        var names: Set<String> = []
        return try tunnelEntries.enumerated().map { index, entry in
            let name = (try? entry.fields.optionalString("name")) ?? nil
            return try Self.wrap(source, "tunnel '\(name ?? "#\(index + 1)")' (line \(entry.line))") {
                let tunnel = try Self.tunnel(entry.fields)
                guard names.insert(tunnel.name).inserted else {
                    throw SecureChannelError(.configuration, "the name is used twice")
                }
                return tunnel
            }
        }
    }

    /// `tunnel --config`'s own options from the top level, with `overrides` (its flags) on top.
    public func tunnelProcessOptions(overriddenBy overrides: ConfigFields) throws -> (
        logFormat: String, metrics: (host: String, port: Int)?
    ) {
        let fields = topLevel.overridden(by: overrides)
        return try Self.wrap(source, "top level") {
            (try fields.choice("log-format", ["text", "json"]) ?? "text", try fields.hostPort("metrics"))
        }
    }

    /// The `serve:` section with `overrides` (the command line's flags) on top, checked and loaded.
    public func serveSettings(overriddenBy overrides: ConfigFields) throws -> ServeSettings {
        guard let serve else {
            throw SecureChannelError(.configuration, "\(source): no 'serve:' section; serve --config reads one")
        }
        return try Self.wrap(source, "serve") { try ServeSettings(fields: serve.overridden(by: overrides)) }
    }

    /// One tunnel from its keys (a `tunnels:` entry, or the flags of `tunnel server` / `tunnel client`), checked.
    /// A key that is absent keeps the default of the tunnel's library configuration.
    public static func tunnel(_ fields: ConfigFields) throws -> Tunnel {
        let name = try fields.string("name", hint: "the tunnel's name")
        guard let mode = try fields.choice("mode", ["server", "client"]) else {
            throw SecureChannelError(.configuration, "missing 'mode': server or client")
        }
        try fields.checkKeys(mode == "server" ? serverKeys : clientKeys, what: "a \(mode) tunnel")
        let files = try fields.materialFiles(for: mode == "server" ? .server : .client)
        let tls = try fields.tlsPolicy()
        if mode == "server" {
            guard
                case .tcp(let host, let port) = try fields.endpoint(
                    "listen", hint: "the TLS address to listen on", allowUnix: false)
            else {
                throw SecureChannelError(.configuration, "a server tunnel listens on HOST:PORT")
            }
            let target = try fields.endpoint("target", hint: "the plaintext service")
            let allowRemote = try fields.flag("unsafe-target")
            guard target.isLocal || allowRemote else {
                throw fields.failure(
                    "target",
                    "\(target) is not on this machine, so the plaintext would cross the network; use a loopback address or a UNIX socket, or \(fields.advice("unsafe-target", near: "target"))"
                )
            }
            var configuration = TunnelServerConfiguration(
                host: host, port: port, target: target, files: files, rules: try fields.accessRules(),
                proxyProtocol: try fields.flag("proxy-protocol"), allowRemoteTarget: allowRemote, tls: tls)
            try fields.applyListenerKeys(to: &configuration)
            if let value = try fields.seconds("handshake-timeout") { configuration.handshakeTimeout = value }
            if let value = try fields.seconds("connect-timeout") { configuration.connectTimeout = value }
            configuration.acceptProxyProtocol = try fields.flag("accept-proxy-protocol")
            configuration.reusePort = try fields.flag("reuse-port")
            configuration.httpIdentityHeader = try fields.optionalString("http-identity-header")
            configuration.metricsLabel = name
            try configuration.validate()
            return .server(name: name, configuration)
        }
        guard
            case .tcp(let host, let port) = try fields.endpoint(
                "target", hint: "the tunnel server's HOST:PORT", allowUnix: false)
        else {
            throw SecureChannelError(.configuration, "a client tunnel's target is the tunnel server's HOST:PORT")
        }
        let listen = try fields.endpoint("listen", hint: "the plaintext address to listen on")
        let allowRemote = try fields.flag("unsafe-listen")
        guard listen.isLocal || allowRemote else {
            throw fields.failure(
                "listen",
                "\(listen) is reachable from other machines, which could then use this tunnel's identity; listen on a loopback address or a UNIX socket, or \(fields.advice("unsafe-listen", near: "listen"))"
            )
        }
        var configuration = TunnelClientConfiguration(
            listen: listen, targetHost: host, targetPort: port, serverName: try fields.optionalString("server-name"),
            files: files, allowRemoteListen: allowRemote, tls: tls)
        configuration.serverSPIFFEID = try fields.optionalString("server-spiffe-id")
        try fields.applyListenerKeys(to: &configuration)
        if let value = try fields.seconds("connect-timeout") { configuration.connectTimeout = value }
        configuration.metricsLabel = name
        try configuration.validate()
        return .client(name: name, configuration)
    }
}

/// The settings every listening side reads from the same keys, whatever its library configuration.
protocol ListenerKeys {
    var maximumConnections: Int { get set }
    var idleTimeout: TimeAmount { get set }
    var shutdownGracePeriod: TimeAmount { get set }
    var expiryWarningDays: Int { get set }
}

extension MessageServerConfiguration: ListenerKeys {}
extension TunnelServerConfiguration: ListenerKeys {}
extension TunnelClientConfiguration: ListenerKeys {}

extension ConfigFields {
    /// `max-connections`, `idle-timeout`, `drain-timeout`, `expiry-warning-days`: a key that is absent keeps the
    /// configuration's default.
    func applyListenerKeys(to configuration: inout some ListenerKeys) throws {
        if let value = try integer("max-connections") { configuration.maximumConnections = value }
        if let value = try seconds("idle-timeout") { configuration.idleTimeout = value }
        if let value = try seconds("drain-timeout") { configuration.shutdownGracePeriod = value }
        if let value = try integer("expiry-warning-days", minimum: 0) { configuration.expiryWarningDays = value }
    }
}
