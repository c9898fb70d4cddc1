import ArgumentParser
import Foundation
import Logging
import NIOCore
import SecureChannel
import SecureChannelConfig
import SecureChannelMetrics
import ServiceLifecycle

/// `securechannel serve`: the mTLS echo server.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run an mTLS server that replies to each message with the message itself (echo).",
        discussion: """
            Requires a client certificate from --ca and at least one --allow-* rule (or --allow-any-client). \
            Prints 'listening on HOST:PORT' on stdout once ready (port 0 picks a free port); logs one line per \
            connection and one when it ends on stderr (--log-format json: one JSON object per line). \
            --cert, --key, --ca and --crl are watched: a change (or SIGHUP) takes effect within 2 s without a \
            restart; a revoked client's open connections are closed; a broken file keeps the old material.

            CONFIGURATION FILE: --config FILE reads the 'serve:' section of a YAML file whose keys are these \
            flags without the dashes (listen, cert, key, ca, allow-cn: [...], metrics, ...). Flags given as \
            well override the file. Check a file with 'securechannel config check FILE'.

            METRICS: --metrics HOST:PORT serves Prometheus text on http://HOST:PORT/metrics (connections \
            accepted, open, refused by reason, handshake durations, bytes, messages, reloads, seconds until the \
            certificate, the CA and the CRL expire) and /healthz (200 while serving, 503 while draining).

            SIGNALS AND EXIT STATUS: SIGTERM or SIGINT stops accepting, lets replies in flight finish for up to \
            --drain-timeout seconds, closes the rest and exits 0. SIGHUP reloads the files. Exit status 1: the \
            server could not start or stopped on an error (one 'error:' line on stderr says why); 64: a usage \
            error (unknown flag, bad value).

            EXAMPLES:
              securechannel serve --listen 127.0.0.1:8443 --cert pki/Jill.crt \\
                  --key pki/Jill.key --ca pki/ca.crt --allow-cn Chris
              securechannel serve --listen [::]:0 --cert pki/Jill.crt --key pki/Jill.key \\
                  --ca pki/ca.crt --allow-any-client --log-format json
              securechannel serve --config /etc/securechannel/serve.yaml \\
                  --metrics 127.0.0.1:9090
              # behind HAProxy send-proxy-v2
              securechannel serve --config serve.yaml --listen 127.0.0.1:9443 \\
                  --accept-proxy-protocol
              curl -s http://127.0.0.1:9090/metrics | grep securechannel_connections
            """
    )

    @Option(
        help: ArgumentHelp(
            "Read the 'serve:' section of this YAML file; flags given as well override it.", valueName: "file"),
        completion: .file())
    var config: String?

    @Option(
        help: ArgumentHelp("Address to listen on. Required (here or in --config).", valueName: "host:port"),
        transform: Endpoint.argument)
    var listen: Endpoint?

    @OptionGroup var files: TLSFileOptions
    @OptionGroup var framingOptions: FramingOptions
    @OptionGroup var access: AccessRuleOptions
    @OptionGroup var onlineCA: OnlineCAOptions

    @Option(
        help: ArgumentHelp(
            "Seconds allowed for the TLS handshake (default: \(formatSeconds(MessageServerConfiguration.Defaults.handshakeTimeout))).",
            valueName: "seconds"))
    var handshakeTimeout: Double?

    @Option(
        help: ArgumentHelp(
            "Close connections idle this many seconds (default: \(formatSeconds(MessageServerConfiguration.Defaults.idleTimeout))).",
            valueName: "seconds"))
    var idleTimeout: Double?

    @Option(
        help: ArgumentHelp(
            "Refuse connections beyond this many (default: \(MessageServerConfiguration.Defaults.maximumConnections)).",
            valueName: "n"))
    var maxConnections: Int?

    @Option(
        help: ArgumentHelp(
            "Warn when our certificate or the CA expires within this many days (default: \(MessageServerConfiguration.Defaults.expiryWarningDays)).",
            valueName: "days"))
    var expiryWarningDays: Int?

    @OptionGroup var output: ProcessOutputOptions

    @Flag(
        help:
            "Expect a PROXY protocol v2 header (HAProxy send-proxy-v2) before TLS on every connection; logs show the client address it names. Only behind a proxy."
    )
    var acceptProxyProtocol = false

    @Flag(
        help:
            "Set SO_REUSEPORT: several serve processes may listen on the same port; the kernel spreads connections among them."
    )
    var reusePort = false

    @Option(
        help: ArgumentHelp(
            "On SIGTERM/SIGINT, seconds replies in flight may take before the rest are closed (default: \(formatSeconds(MessageServerConfiguration.Defaults.shutdownGracePeriod))).",
            valueName: "seconds"))
    var drainTimeout: Double?

    /// The flags given, as configuration keys.
    var fields: ConfigFields {
        var fields = ConfigFields()
        fields.set("listen", listen?.description)
        files.apply(to: &fields)
        framingOptions.apply(to: &fields)
        access.apply(to: &fields)
        fields.set("handshake-timeout", handshakeTimeout)
        fields.set("idle-timeout", idleTimeout)
        fields.set("max-connections", maxConnections)
        fields.set("expiry-warning-days", expiryWarningDays)
        fields.set("log-format", output.logFormat?.rawValue)
        fields.set("metrics", output.metrics?.description)
        fields.set("accept-proxy-protocol", flag: acceptProxyProtocol)
        fields.set("drain-timeout", drainTimeout)
        fields.set("reuse-port", flag: reusePort)
        onlineCA.apply(to: &fields)
        return fields
    }

    func run() async throws {
        let file = try config.map { try ConfigFile(path: $0) }
        let online = try file.map { try $0.serveOnlineCA(overriddenBy: fields) } ?? fields.onlineCA()
        // The log format is read before the files are loaded: the CRL from --crl-url is fetched (and logged) first.
        let formatName = try file.map { try $0.serveLogFormat(overriddenBy: fields) } ?? output.logFormat?.rawValue
        let format = LogFormat(rawValue: formatName ?? "text") ?? .text
        let logger = format.makeLogger(label: "securechannel.serve")
        var wiring = OnlineCAWiring(logger: logger)
        try await wiring.prepare("serve", online, metrics: nil)
        let settings = try file.map { try $0.serveSettings(overriddenBy: fields) } ?? ServeSettings(fields: fields)
        let endpoint = settings.metrics.map { PrometheusEndpoint(host: $0.host, port: $0.port, logger: logger) }
        var configuration = settings.server
        configuration.metricsFactory = endpoint?.factory
        if let keyLog = configuration.tls.keyLog { logger.warning("\(keyLog.warning)", metadata: ["event": "keylog"]) }
        let server = try MessageServer(
            configuration: configuration, logger: logger, replying: { message, _ in message })
        endpoint?.reportReadiness { server.isReady }
        let rules = configuration.rules
        let summary =
            "accepting clients: \(rules.summary); TLS \(configuration.tls.minimumVersion.rawValue)+, framing \(configuration.framing.rawValue)"
            + (configuration.acceptProxyProtocol ? "; PROXY protocol v2 required" : "")
        try await ServiceRunner.run(
            [
                .init(service: server) {
                    let address = try await server.listeningAddress()
                    logger.info(
                        "\(summary)", metadata: ["event": "started", "address": "\(Endpoint.display(address))"])
                    return "listening on \(Endpoint.display(address))"
                }
            ], extras: try wiring.services("serve", for: server, metrics: endpoint), metrics: endpoint,
            format: format, logger: logger)
    }
}
