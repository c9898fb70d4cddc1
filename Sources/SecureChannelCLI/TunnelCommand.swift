import ArgumentParser
import Foundation
import Logging
import NIOCore
import SecureChannel
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
              securechannel tunnel client --listen 127.0.0.1:6379 --target db.example:6380 \\
                  --cert pki/Chris.crt --key pki/Chris.key --ca pki/ca.crt
              redis-cli -p 6379 ping
            """,
        subcommands: [TunnelServerCommand.self, TunnelClientCommand.self]
    )

    @Option(help: ArgumentHelp("Run every tunnel described in this YAML file (see README); nothing starts if one entry is bad.",
                               valueName: "file"))
    var config: String?

    @Option(help: "Log format: text or json.")
    var logFormat: LogFormat = .text

    func run() async throws {
        guard let config else {
            throw CLIError("give a subcommand (tunnel server, tunnel client) or --config FILE; see 'securechannel tunnel --help'")
        }
        let file = try TunnelConfigFile(path: config)
        let logger = logFormat.makeLogger(label: "securechannel.tunnel")
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        var announcements: [@Sendable () async throws -> String] = []
        for tunnel in file.tunnels {
            var tunnelLogger = logger
            tunnelLogger[metadataKey: "tunnel"] = "\(tunnel.name)"
            switch tunnel {
            case .server(let name, let configuration):
                let server = try TunnelServer(configuration: configuration, logger: tunnelLogger)
                services.append(.init(service: server))
                announcements.append { "listening on \(Endpoint.display(try await server.listeningAddress())) (\(name): server to \(configuration.target))" }
            case .client(let name, let configuration):
                let client = try TunnelClient(configuration: configuration, logger: tunnelLogger)
                services.append(.init(service: client))
                announcements.append {
                    let address = try await client.listeningAddress()
                    let shown = address.port == nil ? configuration.listen.description : Endpoint.display(address)
                    return "listening on \(shown) (\(name): client to \(configuration.targetHost):\(configuration.targetPort))"
                }
            }
        }
        let group = ServiceGroup(configuration: .init(
            services: services, gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logFormat.makeLogger(label: "securechannel.lifecycle", level: .warning)))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            for announce in announcements {
                tasks.addTask { Console.out(try await announce()) }
            }
            try await tasks.waitForAll()
        }
    }
}

/// `host:port` or `unix:/path` for a plaintext side.
func tunnelEndpoint(_ text: String) throws -> TunnelEndpoint {
    if text.hasPrefix("unix:") { return .unix(path: String(text.dropFirst(5))) }
    let endpoint = try Endpoint.parse(text)
    return .tcp(host: endpoint.host, port: endpoint.port)
}

/// Runs a service until SIGINT/SIGTERM, printing `listening on …` once bound.
func runUntilSignalled(_ service: some Service, logger: Logger, address: @escaping @Sendable () async throws -> SocketAddress,
                       describe: @escaping @Sendable (SocketAddress) -> String) async throws {
    let services = ServiceGroup(configuration: .init(
        services: [.init(service: service)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await services.run() }
        group.addTask { Console.out("listening on \(describe(try await address()))") }
        try await group.waitForAll()
    }
}

/// `securechannel tunnel server`.
struct TunnelServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server",
        abstract: "Terminate mTLS and forward the verified plaintext stream to --target.",
        discussion: """
            The target must be a loopback address or unix:/path unless --unsafe-target. Files are watched and
            reloaded like serve's; a revoked client's tunnels are cut.

            EXAMPLE:
              securechannel tunnel server --listen 0.0.0.0:8443 --target 127.0.0.1:8080 --cert pki/Jill.crt --key pki/Jill.key --ca pki/ca.crt --allow-cn Chris
            """
    )

    @Option(help: ArgumentHelp("TLS address to listen on.", valueName: "host:port"))
    var listen: Endpoint

    @Option(help: ArgumentHelp("Plaintext service: host:port or unix:/path.", valueName: "target"))
    var target: String

    @OptionGroup var files: TLSFileOptions
    @OptionGroup var access: AccessRuleOptions

    @Option(help: "Log format: text or json.")
    var logFormat: LogFormat = .text

    @Flag(help: "Send a PROXY protocol v2 header (client address, TLS version, CN, certificate) to the target.")
    var proxyProtocol = false

    @Flag(help: "Allow a target that is not on this machine (the plaintext then crosses a network).")
    var unsafeTarget = false

    @Option(help: ArgumentHelp("Refuse connections beyond this many.", valueName: "n"))
    var maxConnections: Int = 1024

    @Option(help: ArgumentHelp("Seconds allowed for the TLS handshake.", valueName: "seconds"))
    var handshakeTimeout: Double = 10

    @Option(help: ArgumentHelp("Close tunnels idle this many seconds.", valueName: "seconds"))
    var idleTimeout: Double = 3600

    @Option(help: ArgumentHelp("Seconds allowed to connect to the target.", valueName: "seconds"))
    var connectTimeout: Double = 5

    func validate() throws {
        guard handshakeTimeout > 0, idleTimeout > 0, connectTimeout > 0 else { throw ValidationError("timeouts must be positive numbers of seconds") }
    }

    func run() async throws {
        let logger = logFormat.makeLogger(label: "securechannel.tunnel")
        let configuration = TunnelServerConfiguration(
            host: listen.host, port: listen.port, target: try tunnelEndpoint(target), files: files.materialFiles,
            rules: access.rules,
            proxyProtocol: proxyProtocol, allowRemoteTarget: unsafeTarget, tls: TLSPolicy(minimumVersion: files.tlsMinimum),
            maximumConnections: maxConnections, handshakeTimeout: timeAmount(seconds: handshakeTimeout),
            idleTimeout: timeAmount(seconds: idleTimeout), connectTimeout: timeAmount(seconds: connectTimeout))
        let server = try TunnelServer(configuration: configuration, logger: logger)
        try await runUntilSignalled(server, logger: logFormat.makeLogger(label: "securechannel.lifecycle", level: .warning),
                                    address: { try await server.listeningAddress() }, describe: Endpoint.display)
    }
}

/// `securechannel tunnel client`.
struct TunnelClientCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "client",
        abstract: "Accept plaintext on --listen and originate mTLS to --target, verifying its name.",
        discussion: """
            The listen address must be loopback or unix:/path unless --unsafe-listen.

            EXAMPLE:
              securechannel tunnel client --listen 127.0.0.1:8080 --target jill.example:8443 --cert pki/Chris.crt --key pki/Chris.key --ca pki/ca.crt
            """
    )

    @Option(help: ArgumentHelp("Plaintext address to listen on: host:port or unix:/path.", valueName: "listen"))
    var listen: String

    @Option(help: ArgumentHelp("The tunnel server.", valueName: "host:port"))
    var target: Endpoint

    @OptionGroup var files: TLSFileOptions

    @Option(help: "Log format: text or json.")
    var logFormat: LogFormat = .text

    @Option(help: ArgumentHelp("Name the server certificate must carry (default: the host of --target).", valueName: "name"))
    var serverName: String?

    @Flag(help: "Allow a listen address reachable from other machines.")
    var unsafeListen = false

    @Option(help: ArgumentHelp("Seconds allowed to connect and handshake with the server.", valueName: "seconds"))
    var connectTimeout: Double = 10

    func run() async throws {
        let logger = logFormat.makeLogger(label: "securechannel.tunnel")
        let configuration = TunnelClientConfiguration(
            listen: try tunnelEndpoint(listen), targetHost: target.host, targetPort: target.port, serverName: serverName,
            files: files.materialFiles, allowRemoteListen: unsafeListen, tls: TLSPolicy(minimumVersion: files.tlsMinimum),
            connectTimeout: timeAmount(seconds: connectTimeout))
        let client = try TunnelClient(configuration: configuration, logger: logger)
        let shown = listen
        try await runUntilSignalled(client, logger: logFormat.makeLogger(label: "securechannel.lifecycle", level: .warning),
                                    address: { try await client.listeningAddress() },
                                    describe: { $0.port == nil ? shown : Endpoint.display($0) })
    }
}
