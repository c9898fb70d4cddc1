import Foundation
import NIOCore
import SecureChannel
import SecureChannelPKI
import Yams

/// `securechannel tunnel --config FILE`: many tunnels in one process, described in YAML.
///
/// ```yaml
/// tunnels:
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
/// Every entry is checked (keys, values, files, safety) before anything starts; the first bad one is reported
/// with its name and line.
public struct TunnelConfigFile: Sendable {
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

    /// The tunnels, in file order.
    public let tunnels: [Tunnel]

    static let serverKeys: Set<String> = [
        "name", "mode", "listen", "target", "cert", "key", "ca", "crl", "crl-expired", "tls-min", "allow-cn", "allow-dns",
        "allow-uri", "allow-any-client", "proxy-protocol", "unsafe-target", "max-connections", "handshake-timeout",
        "idle-timeout", "connect-timeout",
    ]
    static let clientKeys: Set<String> = [
        "name", "mode", "listen", "target", "cert", "key", "ca", "crl", "crl-expired", "tls-min", "server-name",
        "unsafe-listen", "connect-timeout",
    ]

    /// Parses and checks a file. Relative paths are resolved against the file's directory.
    public init(path: String) throws {
        let text = String(decoding: try SecureFile.read(path), as: UTF8.self)
        let base = URL(fileURLWithPath: path).deletingLastPathComponent().path
        try self.init(yaml: text, source: path, baseDirectory: base)
    }

    /// Parses and checks YAML text.
    public init(yaml: String, source: String, baseDirectory: String) throws {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch {
            throw SecureChannelError(.configuration, "\(source): not valid YAML: \(error)")
        }
        guard let list = root?.mapping?["tunnels"]?.sequence, !list.isEmpty else {
            throw SecureChannelError(.configuration, "\(source): expected a top-level 'tunnels:' list with at least one entry")
        }
        var tunnels: [Tunnel] = []
        var names: Set<String> = []
        for (index, node) in list.enumerated() {
            let line = node.mark?.line ?? 0
            let fallback = "#\(index + 1)"
            let name = node.mapping?["name"]?.string ?? fallback
            do {
                let entry = try Entry(node: node, base: baseDirectory)
                guard names.insert(entry.name).inserted else { throw SecureChannelError(.configuration, "the name is used twice") }
                tunnels.append(try entry.tunnel())
            } catch let error as SecureChannelError {
                throw SecureChannelError(.configuration, "\(source): tunnel '\(name)' (line \(line)): \(error.message)")
            } catch let error as PKIError {
                throw SecureChannelError(.configuration, "\(source): tunnel '\(name)' (line \(line)): \(error.message)")
            }
        }
        self.tunnels = tunnels
    }

    /// Reads one entry's fields, with errors that name the field and its line.
    struct Entry {
        let node: Node
        let fields: Node.Mapping
        let base: String
        let name: String
        let mode: String

        init(node: Node, base: String) throws {
            guard let fields = node.mapping else { throw SecureChannelError(.configuration, "each entry must be a mapping of keys to values") }
            self.node = node
            self.fields = fields
            self.base = base
            guard let name = fields["name"]?.string, !name.isEmpty else { throw SecureChannelError(.configuration, "missing 'name'") }
            self.name = name
            guard let mode = fields["mode"]?.string, ["server", "client"].contains(mode) else {
                throw SecureChannelError(.configuration, "'mode' must be server or client")
            }
            self.mode = mode
            let allowed = mode == "server" ? TunnelConfigFile.serverKeys : TunnelConfigFile.clientKeys
            for key in fields.keys {
                guard let text = key.string, allowed.contains(text) else {
                    throw SecureChannelError(.configuration,
                        "unknown key '\(key.string ?? "?")' at line \(key.mark?.line ?? 0) for a \(mode) tunnel")
                }
            }
        }

        func string(_ key: String) throws -> String {
            guard let value = fields[key]?.string, !value.isEmpty else { throw SecureChannelError(.configuration, "missing '\(key)'") }
            return value
        }

        func path(_ key: String) throws -> String { absolute(try string(key)) }

        func absolute(_ path: String) -> String { path.hasPrefix("/") ? path : "\(base)/\(path)" }

        func list(_ key: String) throws -> [String] {
            guard let value = fields[key] else { return [] }
            if let single = value.string { return [single] }
            guard let items = value.sequence else { throw SecureChannelError(.configuration, "'\(key)' (line \(value.mark?.line ?? 0)) must be a list") }
            return try items.map {
                guard let text = $0.string else { throw SecureChannelError(.configuration, "'\(key)' entries must be strings") }
                return text
            }
        }

        func flag(_ key: String) throws -> Bool {
            guard let value = fields[key] else { return false }
            guard let bool = value.bool else { throw SecureChannelError(.configuration, "'\(key)' (line \(value.mark?.line ?? 0)) must be true or false") }
            return bool
        }

        func seconds(_ key: String, default fallback: Double) throws -> TimeAmount {
            guard let value = fields[key] else { return .nanoseconds(Int64(fallback * 1e9)) }
            guard let number = value.float ?? value.int.map(Double.init), number > 0 else {
                throw SecureChannelError(.configuration, "'\(key)' (line \(value.mark?.line ?? 0)) must be a positive number of seconds")
            }
            return .nanoseconds(Int64(number * 1e9))
        }

        func endpoint(_ key: String) throws -> TunnelEndpoint {
            let text = try string(key)
            if text.hasPrefix("unix:") { return .unix(path: absolute(String(text.dropFirst(5)))) }
            guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
                throw SecureChannelError(.configuration, "'\(key)' must be HOST:PORT or unix:/path (got '\(text)')")
            }
            var host = String(text[..<colon])
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            return .tcp(host: host, port: port)
        }

        func tunnel() throws -> Tunnel {
            let crlPolicy = fields["crl-expired"]?.string ?? "deny"
            guard ["allow", "deny"].contains(crlPolicy) else { throw SecureChannelError(.configuration, "'crl-expired' must be allow or deny") }
            let files = TLSMaterialFiles(certificate: try path("cert"), key: try path("key"), ca: try path("ca"),
                                         crls: try list("crl").map(absolute), allowExpiredCRL: crlPolicy == "allow")
            let tlsText = fields["tls-min"]?.string ?? "1.3"
            guard let minimum = TLSPolicy.MinimumVersion(rawValue: tlsText) else { throw SecureChannelError(.configuration, "'tls-min' must be 1.2 or 1.3") }
            _ = try files.load()  // every file readable and consistent before anything starts
            if mode == "server" {
                guard case .tcp(let host, let port) = try endpoint("listen") else {
                    throw SecureChannelError(.configuration, "a server tunnel listens on HOST:PORT")
                }
                var configuration = TunnelServerConfiguration(
                    host: host, port: port, target: try endpoint("target"), files: files,
                    rules: AccessRules(commonNames: Set(try list("allow-cn")), dnsNames: Set(try list("allow-dns")),
                                       uris: Set(try list("allow-uri")), allowAnyClient: try flag("allow-any-client")),
                    proxyProtocol: try flag("proxy-protocol"), allowRemoteTarget: try flag("unsafe-target"),
                    tls: TLSPolicy(minimumVersion: minimum))
                if let value = fields["max-connections"] {
                    guard let number = value.int, number > 0 else { throw SecureChannelError(.configuration, "'max-connections' must be a positive integer") }
                    configuration.maximumConnections = number
                }
                configuration.handshakeTimeout = try seconds("handshake-timeout", default: 10)
                configuration.idleTimeout = try seconds("idle-timeout", default: 3600)
                configuration.connectTimeout = try seconds("connect-timeout", default: 5)
                guard !configuration.rules.isEmpty else {
                    throw SecureChannelError(.configuration, "no client is allowed: add allow-cn, allow-dns, allow-uri or allow-any-client: true")
                }
                try configuration.validate()
                return .server(name: name, configuration)
            }
            guard case .tcp(let host, let port) = try endpoint("target") else {
                throw SecureChannelError(.configuration, "a client tunnel's target is the tunnel server's HOST:PORT")
            }
            let configuration = TunnelClientConfiguration(
                listen: try endpoint("listen"), targetHost: host, targetPort: port, serverName: fields["server-name"]?.string,
                files: files, allowRemoteListen: try flag("unsafe-listen"), tls: TLSPolicy(minimumVersion: minimum),
                connectTimeout: try seconds("connect-timeout", default: 10))
            try configuration.validate()
            return .client(name: name, configuration)
        }
    }
}
