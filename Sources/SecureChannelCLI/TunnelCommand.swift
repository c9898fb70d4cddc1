import ArgumentParser
import Foundation
import Logging
import NIOCore
import SecureChannel
import SecureChannelConfig
import SecureChannelMetrics
import SecureChannelTunnel
import ServiceLifecycle

/// `securechannel tunnel server|client`.
struct TunnelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tunnel",
        abstract: "Put any TCP service behind mutual TLS (like stunnel or ghostunnel).",
        discussion: """
            EXAMPLE (Redis on 127.0.0.1:6379, reached from another machine through mTLS):
              # on the database host
              securechannel tunnel server --listen 0.0.0.0:6380 --target 127.0.0.1:6379 \\
                  --cert pki/Jill.crt --key pki/Jill.key --ca pki/ca.crt --allow-cn Chris
              # on the application host
              securechannel tunnel client --listen 127.0.0.1:6379 \\
                  --target db.example:6380 --server-name db.example \\
                  --cert pki/Chris.crt --key pki/Chris.key --ca pki/ca.crt
              redis-cli -p 6379 ping

            Several tunnels from one YAML file:
              securechannel tunnel --config tunnels.yaml --log-format json
            """,
        subcommands: [TunnelConfigCommand.self, TunnelServerCommand.self, TunnelClientCommand.self],
        defaultSubcommand: TunnelConfigCommand.self
    )
}

/// `securechannel tunnel --config FILE` (the default subcommand, also `tunnel run`). Its options live here, not on
/// `tunnel` itself: ArgumentParser hands a parent's option to the parent even after a subcommand's name, so a
/// `--metrics` or `--log-format` declared on `tunnel` swallowed those of `tunnel server` and `tunnel client`.
struct TunnelConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the tunnels of a configuration file: 'securechannel tunnel --config FILE' (the default)."
    )

    @Option(
        help: ArgumentHelp(
            "Run every tunnel in the 'tunnels:' list of this YAML file (see 'securechannel config --help'); nothing starts if one entry is bad.",
            valueName: "file"), completion: .file())
    var config: String?

    @Option(
        help: ArgumentHelp(
            "Log format: text (default) or json. Overrides the file's top-level log-format.", valueName: "format"))
    var logFormat: LogFormat?

    @Option(
        help: ArgumentHelp(
            "Serve Prometheus metrics on http://HOST:PORT/metrics and /healthz. Overrides the file's top-level metrics.",
            valueName: "host:port"), transform: Endpoint.argument)
    var metrics: Endpoint?

    func run() async throws {
        guard let config else {
            throw CLIError(
                "give a subcommand (tunnel server, tunnel client) or --config FILE; see 'securechannel tunnel --help'")
        }
        let file = try ConfigFile(path: config)
        var flags = ConfigFields()
        flags.set("log-format", logFormat?.rawValue)
        flags.set("metrics", metrics?.description)
        let options = try file.tunnelProcessOptions(overriddenBy: flags)
        let online = try file.tunnelOnlineCA()
        try await runTunnels(
            { try file.tunnels() }, onlineCA: online, format: LogFormat(rawValue: options.logFormat) ?? .text,
            metrics: options.metrics)
    }
}

/// Runs tunnels until SIGINT/SIGTERM; prints one `listening on …` line per tunnel once every tunnel (and the
/// metrics endpoint) is bound.
func runTunnels(
    _ load: () throws -> [ConfigFile.Tunnel], onlineCA: [String: OnlineCAKeys], format: LogFormat,
    metrics: (host: String, port: Int)?, named: Bool = true
) async throws {
    let logger = format.makeLogger(label: "securechannel.tunnel")
    // CRLs from --crl-url first: the tunnels' material (which enforces them) is loaded after.
    var wiring = OnlineCAWiring(logger: logger)
    for (name, keys) in onlineCA.sorted(by: { $0.key < $1.key }) { try await wiring.prepare(name, keys, metrics: nil) }
    let tunnels = try load()
    let endpoint = metrics.map { PrometheusEndpoint(host: $0.host, port: $0.port, logger: logger) }
    var entries: [ServiceRunner.Entry] = []
    var extras: [any Service] = []
    var readiness: [@Sendable () -> Bool] = []
    for tunnel in tunnels {
        var tunnelLogger = logger
        if named { tunnelLogger[metadataKey: "tunnel"] = "\(tunnel.name)" }
        switch tunnel {
        case .server(let name, let given):
            var configuration = given
            configuration.metricsFactory = endpoint?.factory
            if let keyLog = given.tls.keyLog { logger.warning("\(keyLog.warning)", metadata: ["event": "keylog"]) }
            let server = try TunnelServer(configuration: configuration, logger: tunnelLogger)
            extras += try wiring.services(name, for: server, metrics: endpoint)
            let target = configuration.target
            readiness.append { server.isReady }
            entries.append(
                .init(service: server) {
                    let address = Endpoint.display(try await server.listeningAddress())
                    return named ? "listening on \(address) (\(name): server to \(target))" : "listening on \(address)"
                })
        case .client(let name, let given):
            var configuration = given
            configuration.metricsFactory = endpoint?.factory
            if let keyLog = given.tls.keyLog { logger.warning("\(keyLog.warning)", metadata: ["event": "keylog"]) }
            let client = try TunnelClient(configuration: configuration, logger: tunnelLogger)
            extras += try wiring.services(name, for: client, metrics: endpoint)
            readiness.append { client.isReady }
            entries.append(
                .init(service: client) {
                    let address = try await client.listeningAddress()
                    let shown = address.port == nil ? given.listen.description : Endpoint.display(address)
                    return named
                        ? "listening on \(shown) (\(name): client to \(given.target))" : "listening on \(shown)"
                })
        }
    }
    let checks = readiness
    endpoint?.reportReadiness { checks.allSatisfy { $0() } }
    try await ServiceRunner.run(entries, extras: extras, metrics: endpoint, format: format, logger: logger)
}

/// `securechannel tunnel server`.
struct TunnelServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server",
        abstract: "Terminate mTLS and forward the verified plaintext stream to --target.",
        discussion: """
            The target must be a loopback address or unix:/path unless --unsafe-target. Files are watched and \
            reloaded like serve's; a revoked client's tunnels are cut.

            EXAMPLE:
              securechannel tunnel server --listen 0.0.0.0:8443 --target 127.0.0.1:8080 \\
                  --cert pki/Jill.crt --key pki/Jill.key --ca pki/ca.crt --allow-cn Chris
            """
    )

    @Option(help: ArgumentHelp("TLS address to listen on.", valueName: "host:port"), transform: Endpoint.argument)
    var listen: Endpoint

    @Option(help: ArgumentHelp("Plaintext service: host:port or unix:/path.", valueName: "target"))
    var target: String

    @OptionGroup var files: TLSFileOptions
    @OptionGroup var onlineCA: OnlineCAOptions
    @OptionGroup var access: AccessRuleOptions

    @Option(help: ArgumentHelp("Log format: text (default) or json.", valueName: "format"))
    var logFormat: LogFormat?

    @Flag(help: "Send a PROXY protocol v2 header (client address, TLS version, CN, certificate) to the target.")
    var proxyProtocol = false

    @Option(
        help: ArgumentHelp(
            "For an HTTP/1.1 target: add this request header with the verified identity (Envoy's XFCC format), removing any the client sent.",
            valueName: "name"))
    var httpIdentityHeader: String?

    @Flag(help: "Expect a PROXY protocol v2 header from a load balancer (HAProxy send-proxy-v2) before TLS.")
    var acceptProxyProtocol = false

    @Flag(help: "Allow a target that is not on this machine (the plaintext then crosses a network).")
    var unsafeTarget = false

    @Flag(help: "Set SO_REUSEPORT: several tunnel server processes may listen on the same port.")
    var reusePort = false

    @Option(
        help: ArgumentHelp(
            "Refuse connections beyond this many (default: \(TunnelServerConfiguration.Defaults.maximumConnections)).",
            valueName: "n"))
    var maxConnections: Int?

    @Option(
        help: ArgumentHelp(
            "Seconds allowed for the TLS handshake (default: \(formatSeconds(TunnelServerConfiguration.Defaults.handshakeTimeout))).",
            valueName: "seconds"))
    var handshakeTimeout: Double?

    @Option(
        help: ArgumentHelp(
            "Close tunnels idle this many seconds (default: \(formatSeconds(TunnelServerConfiguration.Defaults.idleTimeout))).",
            valueName: "seconds"))
    var idleTimeout: Double?

    @Option(
        help: ArgumentHelp(
            "Seconds allowed to connect to the target (default: \(formatSeconds(TunnelServerConfiguration.Defaults.connectTimeout))).",
            valueName: "seconds"))
    var connectTimeout: Double?

    @Option(
        help: ArgumentHelp(
            "On SIGTERM/SIGINT, seconds open tunnels may take before they are closed (default: \(formatSeconds(TunnelServerConfiguration.Defaults.shutdownGracePeriod))).",
            valueName: "seconds"))
    var drainTimeout: Double?

    @Option(
        help: ArgumentHelp(
            "Warn when our certificate or the CA expires within this many days (default: \(TunnelServerConfiguration.Defaults.expiryWarningDays)).",
            valueName: "days"))
    var expiryWarningDays: Int?

    @Option(
        help: ArgumentHelp(
            "Serve Prometheus metrics on http://HOST:PORT/metrics and /healthz.", valueName: "host:port"),
        transform: Endpoint.argument)
    var metrics: Endpoint?

    func run() async throws {
        var fields = ConfigFields()
        fields.set("name", "tunnel")
        fields.set("mode", "server")
        fields.set("listen", listen.description)
        fields.set("target", target)
        files.apply(to: &fields)
        access.apply(to: &fields)
        fields.set("proxy-protocol", flag: proxyProtocol)
        fields.set("http-identity-header", httpIdentityHeader)
        fields.set("accept-proxy-protocol", flag: acceptProxyProtocol)
        fields.set("unsafe-target", flag: unsafeTarget)
        fields.set("reuse-port", flag: reusePort)
        fields.set("max-connections", maxConnections)
        fields.set("handshake-timeout", handshakeTimeout)
        fields.set("idle-timeout", idleTimeout)
        fields.set("connect-timeout", connectTimeout)
        fields.set("drain-timeout", drainTimeout)
        fields.set("expiry-warning-days", expiryWarningDays)
        onlineCA.apply(to: &fields)
        let keys = try fields.onlineCA()
        try await runTunnels(
            { [try ConfigFile.tunnel(fields)] }, onlineCA: keys.map { ["tunnel": $0] } ?? [:],
            format: logFormat ?? .text, metrics: metrics.map { ($0.host, $0.port) }, named: false)
    }
}

/// `securechannel tunnel client`.
struct TunnelClientCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "client",
        abstract: "Accept plaintext on --listen and originate mTLS to --target, verifying its name.",
        discussion: """
            The listen address must be loopback or unix:/path unless --unsafe-listen. --cert, --key, --ca and \
            --crl are watched like serve's: a change (or SIGHUP) takes effect for new tunnels without a restart; \
            open tunnels go on; a broken file keeps the old material.

            EXAMPLE:
              securechannel tunnel client --listen 127.0.0.1:8080 --target \\
                  jill.example:8443 --cert pki/Chris.crt --key pki/Chris.key \\
                  --ca pki/ca.crt
            """
    )

    @Option(help: ArgumentHelp("Plaintext address to listen on: host:port or unix:/path.", valueName: "listen"))
    var listen: String

    @Option(help: ArgumentHelp("The tunnel server.", valueName: "host:port"), transform: Endpoint.argument)
    var target: Endpoint

    @OptionGroup var files: TLSFileOptions
    @OptionGroup var onlineCA: OnlineCAOptions

    @Option(help: ArgumentHelp("Log format: text (default) or json.", valueName: "format"))
    var logFormat: LogFormat?

    @Option(
        help: ArgumentHelp("Name the server certificate must carry (default: the host of --target).", valueName: "name")
    )
    var serverName: String?

    @OptionGroup var spiffe: ServerSPIFFEOption

    @Flag(help: "Allow a listen address reachable from other machines.")
    var unsafeListen = false

    @Option(
        help: ArgumentHelp(
            "Seconds allowed to connect and handshake with the server (default: \(formatSeconds(TunnelClientConfiguration.Defaults.connectTimeout))).",
            valueName: "seconds"))
    var connectTimeout: Double?

    @Option(
        help: ArgumentHelp(
            "On SIGTERM/SIGINT, seconds open tunnels may take before they are closed (default: \(formatSeconds(TunnelClientConfiguration.Defaults.shutdownGracePeriod))).",
            valueName: "seconds"))
    var drainTimeout: Double?

    @Option(
        help: ArgumentHelp(
            "Refuse local connections beyond this many (default: \(TunnelClientConfiguration.Defaults.maximumConnections)).",
            valueName: "n"))
    var maxConnections: Int?

    @Option(
        help: ArgumentHelp(
            "Close tunnels idle this many seconds (default: \(formatSeconds(TunnelClientConfiguration.Defaults.idleTimeout))).",
            valueName: "seconds"))
    var idleTimeout: Double?

    @Option(
        help: ArgumentHelp(
            "Warn when our certificate or the CA expires within this many days (default: \(TunnelClientConfiguration.Defaults.expiryWarningDays)).",
            valueName: "days"))
    var expiryWarningDays: Int?

    @Option(
        help: ArgumentHelp(
            "Serve Prometheus metrics on http://HOST:PORT/metrics and /healthz.", valueName: "host:port"),
        transform: Endpoint.argument)
    var metrics: Endpoint?

    func run() async throws {
        var fields = ConfigFields()
        fields.set("name", "tunnel")
        fields.set("mode", "client")
        fields.set("listen", listen)
        fields.set("target", target.description)
        files.apply(to: &fields)
        fields.set("server-name", serverName)
        fields.set("server-spiffe-id", spiffe.serverSPIFFEID)
        fields.set("unsafe-listen", flag: unsafeListen)
        fields.set("connect-timeout", connectTimeout)
        fields.set("drain-timeout", drainTimeout)
        fields.set("max-connections", maxConnections)
        fields.set("idle-timeout", idleTimeout)
        fields.set("expiry-warning-days", expiryWarningDays)
        onlineCA.apply(to: &fields)
        let keys = try fields.onlineCA()
        try await runTunnels(
            { [try ConfigFile.tunnel(fields)] }, onlineCA: keys.map { ["tunnel": $0] } ?? [:],
            format: logFormat ?? .text, metrics: metrics.map { ($0.host, $0.port) }, named: false)
    }
}
