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
            --cert, --key, --ca and --crl are watched: a change (or SIGHUP) takes effect within 2 s without a
            restart; a revoked client's open connections are closed; a broken file keeps the old material.

            EXAMPLES:
              securechannel serve --listen 127.0.0.1:8443 --cert pki/Jill.crt --key pki/Jill.key --ca pki/ca.crt --allow-cn Chris
              securechannel serve --listen [::]:0 --cert pki/Jill.crt --key pki/Jill.key --ca pki/ca.crt --allow-any-client --log-format json
            """
    )

    @Option(help: ArgumentHelp("Address to listen on.", valueName: "host:port"))
    var listen: Endpoint

    @OptionGroup var files: TLSFileOptions
    @OptionGroup var framingOptions: FramingOptions
    @OptionGroup var access: AccessRuleOptions

    @Option(help: ArgumentHelp("Seconds allowed for the TLS handshake.", valueName: "seconds"))
    var handshakeTimeout: Double = 10

    @Option(help: ArgumentHelp("Close connections idle this many seconds.", valueName: "seconds"))
    var idleTimeout: Double = 300

    @Option(help: ArgumentHelp("Refuse connections beyond this many.", valueName: "n"))
    var maxConnections: Int = 1024

    @Option(help: ArgumentHelp("Warn when our certificate or the CA expires within this many days.", valueName: "days"))
    var expiryWarningDays: Int = 14

    @Option(help: "Log format: text or json.")
    var logFormat: LogFormat = .text

    func validate() throws {
        guard handshakeTimeout > 0, idleTimeout > 0 else { throw ValidationError("timeouts must be positive numbers of seconds") }
    }

    func run() async throws {
        let rules = access.rules
        var configuration = try MessageServerConfiguration(host: listen.host, port: listen.port, files: files.materialFiles, rules: rules)
        configuration.tls = TLSPolicy(minimumVersion: files.tlsMinimum)
        configuration.framing = framingOptions.framing
        configuration.maximumMessageBytes = framingOptions.maxMessageBytes
        configuration.handshakeTimeout = timeAmount(seconds: handshakeTimeout)
        configuration.idleTimeout = timeAmount(seconds: idleTimeout)
        configuration.maximumConnections = maxConnections
        configuration.expiryWarningDays = expiryWarningDays
        let logger = logFormat.makeLogger(label: "securechannel.serve")
        let server = try MessageServer(configuration: configuration, logger: logger) { message, _ in message }
        let summary = "accepting clients: \(rules.summary); TLS \(configuration.tls.minimumVersion.rawValue)+, framing \(configuration.framing.rawValue)"
        let services = ServiceGroup(configuration: .init(
            services: [.init(service: server)], gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logFormat.makeLogger(label: "securechannel.lifecycle", level: .warning)))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await services.run() }
            group.addTask {
                let address = try await server.listeningAddress()
                Console.out("listening on \(Endpoint.display(address))")
                logger.info("\(summary)")
            }
            try await group.waitForAll()
        }
    }
}
