import ArgumentParser
import Foundation
import Logging
import NIOCore
import SecureChannel
import ServiceLifecycle

/// `securechannel serve`: the mTLS echo server.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run an mTLS server that replies to each message with the message itself (echo).",
        discussion: """
            Requires a client certificate from --ca and at least one --allow-* rule (or --allow-any-client).
            Prints 'listening on HOST:PORT' on stdout once ready (port 0 picks a free port); logs one line per
            connection and one when it ends on stderr. SIGINT/SIGTERM stop it gracefully.

            EXAMPLES:
              securechannel serve --listen 127.0.0.1:8443 --cert pki/Jill.crt --key pki/Jill.key --ca pki/ca.crt --allow-cn Chris
              securechannel serve --listen [::]:0 --cert pki/Jill.crt --key pki/Jill.key --ca pki/ca.crt --allow-any-client --log-format json
            """
    )

    @Option(help: ArgumentHelp("Address to listen on.", valueName: "host:port"))
    var listen: Endpoint

    @OptionGroup var files: TLSFileOptions

    @Option(name: .customLong("allow-cn"), help: ArgumentHelp("Allow clients with this common name (repeatable).", valueName: "name"))
    var allowCN: [String] = []

    @Option(name: .customLong("allow-dns"), help: ArgumentHelp("Allow clients with this DNS SAN (repeatable).", valueName: "name"))
    var allowDNS: [String] = []

    @Option(name: .customLong("allow-uri"), help: ArgumentHelp("Allow clients with this URI SAN (repeatable).", valueName: "uri"))
    var allowURI: [String] = []

    @Flag(help: "Allow any client whose certificate the CA issued.")
    var allowAnyClient = false

    @Option(help: ArgumentHelp("Seconds allowed for the TLS handshake.", valueName: "seconds"))
    var handshakeTimeout: Double = 10

    @Option(help: ArgumentHelp("Close connections idle this many seconds.", valueName: "seconds"))
    var idleTimeout: Double = 300

    @Option(help: ArgumentHelp("Refuse connections beyond this many.", valueName: "n"))
    var maxConnections: Int = 1024

    @Option(help: "Log format: text or json.")
    var logFormat: LogFormat = .text

    func validate() throws {
        guard handshakeTimeout > 0, idleTimeout > 0 else { throw ValidationError("timeouts must be positive numbers of seconds") }
    }

    func run() async throws {
        let (identity, trust) = try files.load()
        let rules = AccessRules(commonNames: Set(allowCN), dnsNames: Set(allowDNS), uris: Set(allowURI), allowAnyClient: allowAnyClient)
        let configuration = MessageServerConfiguration(
            host: listen.host, port: listen.port, identity: identity, trust: trust, rules: rules,
            tls: TLSPolicy(minimumVersion: files.tlsMinimum), framing: files.framing,
            maximumMessageBytes: files.maxMessageBytes, handshakeTimeout: timeAmount(seconds: handshakeTimeout),
            idleTimeout: timeAmount(seconds: idleTimeout), maximumConnections: maxConnections)
        let logger = logFormat.makeLogger(label: "securechannel.serve")
        let server = try MessageServer(configuration: configuration, logger: logger) { message, _ in message }
        let services = ServiceGroup(configuration: .init(
            services: [.init(service: server)], gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logFormat.makeLogger(label: "securechannel.lifecycle", level: .warning)))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await services.run() }
            group.addTask {
                let address = try await server.listeningAddress()
                Console.out("listening on \(Endpoint.display(address))")
                logger.info("accepting clients: \(rules.summary); TLS \(configuration.tls.minimumVersion.rawValue)+, framing \(configuration.framing.rawValue)")
            }
            try await group.waitForAll()
        }
    }
}
