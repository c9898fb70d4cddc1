import Foundation
import NIOCore
import SecureChannel
import SecureChannelPKI
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
    static let commonTunnelKeys: Set<String> = ["name", "mode", "listen", "target", "cert", "key", "ca", "crl", "crl-expired", "tls-min", "connect-timeout", "drain-timeout"]
    /// The keys of a `mode: server` tunnel (the `tunnel server` flags).
    public static let serverKeys: Set<String> = commonTunnelKeys.union([
        "allow-cn", "allow-dns", "allow-uri", "allow-any-client", "proxy-protocol", "unsafe-target", "max-connections",
        "handshake-timeout", "idle-timeout", "accept-proxy-protocol", "reuse-port",
    ])
    /// The keys of a `mode: client` tunnel (the `tunnel client` flags).
    public static let clientKeys: Set<String> = commonTunnelKeys.union(["server-name", "unsafe-listen"])

    /// Reads and parses a file; nothing is loaded or checked beyond its shape until a section is used.
    public init(path: String) throws {
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
            throw SecureChannelError(.configuration, "\(source): expected a mapping with 'serve:' and/or 'tunnels:' (see 'securechannel config --help')")
        }
        var top = Node.Mapping([])
        var serve: ConfigFields?
        var entries: [(Int, ConfigFields)] = []
        for (key, node) in mapping {
            let line = key.mark?.line ?? 0
            switch key.string {
            case "serve":
                guard let section = node.mapping else { throw SecureChannelError(.configuration, "\(source) line \(line): 'serve' must be a mapping of flag names to values") }
                serve = try Self.wrap(source, "serve") { try ConfigFields(mapping: section, baseDirectory: baseDirectory) }
            case "tunnels":
                guard let list = node.sequence, !list.isEmpty else {
                    throw SecureChannelError(.configuration, "\(source) line \(line): 'tunnels' must be a list with at least one entry")
                }
                for (index, item) in list.enumerated() {
                    let itemLine = item.mark?.line ?? 0
                    guard let section = item.mapping else {
                        throw SecureChannelError(.configuration, "\(source): tunnel #\(index + 1) (line \(itemLine)): each entry must be a mapping of keys to values")
                    }
                    entries.append((itemLine, try Self.wrap(source, "tunnel #\(index + 1) (line \(itemLine))") {
                        try ConfigFields(mapping: section, baseDirectory: baseDirectory)
                    }))
                }
            case let name?:
                top[Node(name)] = node
            case nil:
                throw SecureChannelError(.configuration, "\(source) line \(line): keys must be names")
            }
        }
        let topLevel = try Self.wrap(source, "top level") { try ConfigFields(mapping: top, baseDirectory: baseDirectory) }
        try Self.wrap(source, "top level") { try topLevel.checkKeys(Self.topLevelKeys, what: "the top level (sections: serve, tunnels)") }
        self.topLevel = topLevel
        guard serve != nil || !entries.isEmpty else {
            throw SecureChannelError(.configuration, "\(source): nothing to run: add a 'serve:' section or a 'tunnels:' list")
        }
        self.serve = serve
        tunnelEntries = entries
    }

    /// Prefixes errors with the file and the section.
    static func wrap<T>(_ source: String, _ section: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as SecureChannelError {
            throw SecureChannelError(.configuration, "\(source): \(section): \(error.message)")
        } catch let error as PKIError {
            throw SecureChannelError(.configuration, "\(source): \(section): \(error.message)")
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
                guard names.insert(tunnel.name).inserted else { throw SecureChannelError(.configuration, "the name is used twice") }
                return tunnel
            }
        }
    }

    /// `tunnel --config`'s own options from the top level, with `overrides` (its flags) on top.
    public func tunnelProcessOptions(overriddenBy overrides: ConfigFields) throws -> (logFormat: String, metrics: (host: String, port: Int)?) {
        let fields = topLevel.overridden(by: overrides)
        return try Self.wrap(source, "top level") {
            (try fields.choice("log-format", ["text", "json"], default: "text"), try fields.hostPort("metrics"))
        }
    }

    /// The `serve:` section with `overrides` (the command line's flags) on top, checked and loaded.
    public func serveSettings(overriddenBy overrides: ConfigFields) throws -> ServeSettings {
        guard let serve else { throw SecureChannelError(.configuration, "\(source): no 'serve:' section; serve --config reads one") }
        return try Self.wrap(source, "serve") { try ServeSettings(fields: serve.overridden(by: overrides)) }
    }

    /// One tunnel from its keys (a `tunnels:` entry, or the flags of `tunnel server` / `tunnel client`), checked.
    public static func tunnel(_ fields: ConfigFields) throws -> Tunnel {
        let name = try fields.string("name", hint: "the tunnel's name")
        let mode = try fields.choice("mode", ["server", "client"], default: "")
        guard !mode.isEmpty else { throw SecureChannelError(.configuration, "missing 'mode': server or client") }
        try fields.checkKeys(mode == "server" ? serverKeys : clientKeys, what: "a \(mode) tunnel")
        let files = try fields.materialFiles()
        let tls = try fields.tlsPolicy()
        let drain = try fields.seconds("drain-timeout", default: 5)
        if mode == "server" {
            guard case .tcp(let host, let port) = try fields.endpoint("listen", hint: "the TLS address to listen on") else {
                throw SecureChannelError(.configuration, "a server tunnel listens on HOST:PORT")
            }
            var configuration = TunnelServerConfiguration(
                host: host, port: port, target: try fields.endpoint("target", hint: "the plaintext service"), files: files,
                rules: try fields.accessRules(), proxyProtocol: try fields.flag("proxy-protocol"),
                allowRemoteTarget: try fields.flag("unsafe-target"), tls: tls,
                maximumConnections: try fields.positiveInteger("max-connections", default: 1024),
                handshakeTimeout: try fields.seconds("handshake-timeout", default: 10),
                idleTimeout: try fields.seconds("idle-timeout", default: 3600),
                connectTimeout: try fields.seconds("connect-timeout", default: 5))
            configuration.acceptProxyProtocol = try fields.flag("accept-proxy-protocol")
            configuration.reusePort = try fields.flag("reuse-port")
            configuration.shutdownGracePeriod = drain
            configuration.metricsLabel = name
            try configuration.validate()
            return .server(name: name, configuration)
        }
        guard case .tcp(let host, let port) = try fields.endpoint("target", hint: "the tunnel server's HOST:PORT") else {
            throw SecureChannelError(.configuration, "a client tunnel's target is the tunnel server's HOST:PORT")
        }
        var configuration = TunnelClientConfiguration(
            listen: try fields.endpoint("listen", hint: "the plaintext address to listen on"), targetHost: host, targetPort: port,
            serverName: try fields.optionalString("server-name"), files: files, allowRemoteListen: try fields.flag("unsafe-listen"),
            tls: tls, connectTimeout: try fields.seconds("connect-timeout", default: 10))
        configuration.shutdownGracePeriod = drain
        configuration.metricsLabel = name
        try configuration.validate()
        return .client(name: name, configuration)
    }
}
