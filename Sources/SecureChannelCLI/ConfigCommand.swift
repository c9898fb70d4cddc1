import ArgumentParser
import Foundation
import NIOCore
import SecureChannel
import SecureChannelConfig
import SecureChannelPKI
import SecureChannelTunnel

/// `securechannel config`: the configuration file shared by `serve --config` and `tunnel --config`.
struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Check a configuration file for serve and tunnel.",
        discussion: """
            One YAML format for both. Keys are the flags without the dashes; lists for repeatable flags; \
            true/false for switches; relative paths are resolved against the file's directory. Flags given on \
            the command line override the file.

              log-format: json               # top level: options of 'tunnel --config'
              metrics: 127.0.0.1:9091
              serve:                         # read by 'serve --config FILE'
                listen: 0.0.0.0:8443
                cert: pki/Jill.crt
                key: pki/Jill.key
                ca: pki/ca.crt
                crl: [pki/crl.pem]
                allow-cn: [Chris]
                metrics: 127.0.0.1:9090
                log-format: json
              tunnels:                       # read by 'tunnel --config FILE'
                - name: redis
                  mode: server               # or client; the keys: that command's flags
                  listen: 0.0.0.0:6380
                  target: 127.0.0.1:6379
                  cert: pki/Jill.crt
                  key: pki/Jill.key
                  ca: pki/ca.crt
                  allow-cn: [Chris]

            EXAMPLES:
              securechannel config check /etc/securechannel/securechannel.yaml
            """,
        subcommands: [ConfigCheckCommand.self]
    )
}

/// `securechannel config check FILE`.
struct ConfigCheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate a configuration file and explain what it would run.",
        discussion: """
            Checks every key and value, loads every certificate, key, CA and CRL, and applies the same safety \
            rules as the commands (a remote tunnel target needs unsafe-target, ...). Prints what each section \
            would run, with the defaults filled in, and exits 0; or prints one 'error:' line naming the section \
            and line and exits 1.
            """
    )

    @Argument(help: ArgumentHelp("The YAML file.", valueName: "file"), completion: .file(extensions: ["yaml", "yml"]))
    var file: String

    func run() async throws {
        let config = try ConfigFile(path: file)
        var lines: [String] = []
        if config.serve != nil {
            let settings = try config.serveSettings(overriddenBy: ConfigFields())
            lines += Self.explain(settings)
            lines += Self.explain(try config.serveOnlineCA(overriddenBy: ConfigFields()))
        }
        if config.hasTunnels {
            let options = try config.tunnelProcessOptions(overriddenBy: ConfigFields())
            lines.append(
                "tunnel --config: log format \(options.logFormat); metrics \(options.metrics.map { "on http://\(Endpoint(host: $0.host, port: $0.port))/metrics" } ?? "off")"
            )
            let online = try config.tunnelOnlineCA()
            for tunnel in try config.tunnels() {
                lines += Self.explain(tunnel)
                lines += Self.explain(online[tunnel.name])
            }
        }
        Console.out("\(file): OK")
        for line in lines { Console.out(line) }
    }

    static func explain(_ settings: ServeSettings) -> [String] {
        let server = settings.server
        var lines = [
            "serve: listen on \(Endpoint(host: server.host, port: server.port)); clients: \(server.rules.summary)",
            "  TLS \(server.tls.minimumVersion.rawValue)+; framing \(server.framing.rawValue), messages up to \(server.maximumMessageBytes) bytes",
            "  timeouts: handshake \(seconds(server.handshakeTimeout)) s, idle \(seconds(server.idleTimeout)) s, drain \(seconds(server.shutdownGracePeriod)) s; at most \(server.maximumConnections) connections",
            "  log format \(settings.logFormat); metrics \(settings.metrics.map { "on http://\(Endpoint(host: $0.host, port: $0.port))/metrics and /healthz" } ?? "off"); PROXY protocol v2 \(server.acceptProxyProtocol ? "required (behind a load balancer only)" : "off")",
        ]
        if let files = server.reloadFiles { lines += material(files) }
        return lines
    }

    static func explain(_ tunnel: ConfigFile.Tunnel) -> [String] {
        switch tunnel {
        case .server(let name, let configuration):
            return [
                "tunnel '\(name)' (server): TLS on \(Endpoint(host: configuration.host, port: configuration.port)) -> plaintext to \(configuration.target)\(configuration.proxyProtocol ? " with a PROXY v2 header" : ""); clients: \(configuration.rules.summary)",
                "  TLS \(configuration.tls.minimumVersion.rawValue)+; timeouts: handshake \(seconds(configuration.handshakeTimeout)) s, idle \(seconds(configuration.idleTimeout)) s, connect \(seconds(configuration.connectTimeout)) s; at most \(configuration.maximumConnections) connections",
            ] + material(configuration.files)
        case .client(let name, let configuration):
            return [
                "tunnel '\(name)' (client): plaintext on \(configuration.listen) -> TLS to \(configuration.targetHost):\(configuration.targetPort), server name \(configuration.serverName ?? configuration.targetHost)",
                "  TLS \(configuration.tls.minimumVersion.rawValue)+; timeouts: connect \(seconds(configuration.connectTimeout)) s, idle \(seconds(configuration.idleTimeout)) s, drain \(seconds(configuration.shutdownGracePeriod)) s; at most \(configuration.maximumConnections) connections",
            ] + material(configuration.files)
        }
    }

    /// One line about the online CA, when the end renews from one or fetches its CRL.
    static func explain(_ keys: OnlineCAKeys?) -> [String] {
        guard let keys else { return [] }
        var parts: [String] = []
        if let url = keys.renewFrom { parts.append("renews its certificate from \(url) at two thirds of its life") }
        if let url = keys.crlURL {
            parts.append("fetches the CRL from \(url) every \(Int(keys.crlRefresh)) s into \(keys.crlFile)")
        }
        return ["  online CA: " + parts.joined(separator: "; ")]
    }

    /// One line about the certificate, CA and CRLs, with their expiry.
    static func material(_ files: TLSMaterialFiles) -> [String] {
        guard let material = try? files.load() else { return [] }
        let leaf = material.identity.leaf
        var text =
            "  certificate \(files.certificate) (\(PeerIdentity(certificate: leaf).subject), expires \(CertificateDescription.format(leaf.notValidAfter))); CA \(files.ca)"
        if let crls = material.revocation?.crls, !crls.isEmpty {
            let next = crls.compactMap(\.nextUpdate).min().map(CertificateDescription.format) ?? "?"
            text += "; \(crls.count) CRL(s), next update \(next)"
        }
        return [text]
    }

    static func seconds(_ amount: TimeAmount) -> String { formatSeconds(amount) }
}
