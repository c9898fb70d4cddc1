import ArgumentParser
import Foundation
import NIOCore
import SecureChannel
import SecureChannelConfig

/// `HOST:PORT`, with IPv6 in brackets (`[::1]:8443`).
struct Endpoint: ExpressibleByArgument, CustomStringConvertible {
    var host: String
    var port: Int

    init?(argument: String) {
        guard let parsed = try? Endpoint.parse(argument) else { return nil }
        self = parsed
    }

    init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    static func parse(_ text: String) throws -> Endpoint {
        guard case .tcp(let host, let port) = try SocketEndpoint.parse(text) else {
            throw CLIError("'\(text)' is not HOST:PORT")
        }
        return Endpoint(host: host, port: port)
    }

    /// Parses a flag's value; the error text completes ArgumentParser's "The value '…' is invalid for '--flag'".
    static func argument(_ text: String) throws -> Endpoint {
        do {
            return try parse(text)
        } catch {
            throw ArgumentText("expected HOST:PORT, e.g. 127.0.0.1:8443, localhost:8443 or [::1]:8443")
        }
    }

    static func display(_ address: SocketAddress) -> String {
        ConnectionRecord.display(address)
    }

    var description: String { SocketEndpoint.format(host: host, port: port) }

    static var defaultCompletionKind: CompletionKind { .default }
}

/// `--cert`, `--key`, `--ca`, `--crl` and `--tls-min`: shared by `serve`, `send` and both tunnel ends. Optional
/// here because `serve --config` may give them in a file; a command that needs one says so when it is missing.
struct TLSFileOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp("Our certificate (PEM or DER; intermediates after the leaf). Required.", valueName: "file"),
        completion: .file())
    var cert: String?

    @Option(
        help: ArgumentHelp("Our private key (PKCS#8, PKCS#1 or SEC1; PEM or DER). Required.", valueName: "file"),
        completion: .file())
    var key: String?

    @Option(
        help: ArgumentHelp(
            "The CA certificate(s) the peer must chain to. Only these are trusted. Required.", valueName: "file"),
        completion: .file())
    var ca: String?

    @Option(
        name: .customLong("crl"),
        help: ArgumentHelp("A CRL from the CA (PEM or DER, repeatable); revoked peers are refused.", valueName: "file"),
        completion: .file())
    var crls: [String] = []

    @Option(
        help: ArgumentHelp("What to do with an expired CRL: deny (default, fail closed) or allow.", valueName: "policy")
    )
    var crlExpired: CRLExpiredPolicy?

    @Option(
        help: ArgumentHelp(
            "Append TLS secrets to FILE (NSS key log, 0600) so Wireshark can decrypt a capture. Debugging only.",
            valueName: "file"), completion: .file())
    var keylog: String?

    @Option(
        name: .customLong("tls-min"),
        help: ArgumentHelp("Oldest TLS version: 1.3 (default) or 1.2 (ECDHE AEAD suites only).", valueName: "version"))
    var tlsMinimum: TLSPolicy.MinimumVersion?

    /// The flags given, as configuration keys.
    func apply(to fields: inout ConfigFields) {
        fields.set("cert", cert)
        fields.set("key", key)
        fields.set("ca", ca)
        fields.set("crl", list: crls)
        fields.set("crl-expired", crlExpired?.rawValue)
        fields.set("tls-min", tlsMinimum?.rawValue)
        fields.set("keylog", keylog)
    }

    /// The files, for a command that takes no configuration file (`send`).
    func materialFiles() throws -> TLSMaterialFiles {
        func required(_ value: String?, _ flag: String, _ what: String) throws -> String {
            guard let value else { throw CLIError("missing \(flag) FILE (\(what))") }
            return value
        }
        return TLSMaterialFiles(
            certificate: try required(cert, "--cert", "our certificate"),
            key: try required(key, "--key", "our private key"),
            ca: try required(ca, "--ca", "the CA certificate"), crls: crls, allowExpiredCRL: crlExpired == .allow)
    }
}

extension TLSFileOptions {
    /// `--keylog`, else (for the connecting commands, like curl) `SSLKEYLOGFILE`; the warning goes to stderr.
    func keyLog(honouringEnvironment: Bool) throws -> KeyLog? {
        let environment = honouringEnvironment ? ProcessInfo.processInfo.environment["SSLKEYLOGFILE"] : nil
        guard let path = keylog ?? environment.flatMap({ $0.isEmpty ? nil : $0 }) else { return nil }
        let log = try KeyLog.file(path)
        Console.error("warning: \(log.warning)\(keylog == nil ? " (from SSLKEYLOGFILE)" : "")")
        return log
    }
}

/// `--framing` and `--max-message-bytes`: shared by `serve` and `send`.
struct FramingOptions: ParsableArguments {
    @Option(help: "Message framing: lines (default) or length (4-byte big-endian length prefix).")
    var framing: Framing?

    @Option(
        help: ArgumentHelp("Largest message in bytes (default: \(Framing.defaultMaximumMessageBytes)).", valueName: "n")
    )
    var maxMessageBytes: Int?

    func validate() throws {
        if let maxMessageBytes, maxMessageBytes <= 0 {
            throw ValidationError("--max-message-bytes must be a positive number of bytes")
        }
    }

    func apply(to fields: inout ConfigFields) {
        fields.set("framing", framing?.rawValue)
        fields.set("max-message-bytes", maxMessageBytes)
    }
}

/// `--allow-cn`, `--allow-dns`, `--allow-uri`, `--allow-any-client`: shared by `serve` and `tunnel server`.
struct AccessRuleOptions: ParsableArguments {
    @Option(
        name: .customLong("allow-cn"),
        help: ArgumentHelp("Allow clients with this common name (repeatable).", valueName: "name"))
    var allowCN: [String] = []

    @Option(
        name: .customLong("allow-dns"),
        help: ArgumentHelp("Allow clients with this DNS SAN (* stands for one label; repeatable).", valueName: "name"))
    var allowDNS: [String] = []

    @Option(
        name: .customLong("allow-uri"),
        help: ArgumentHelp(
            "Allow clients with this URI SAN (* one path segment, a final ** the rest; repeatable).", valueName: "uri"))
    var allowURI: [String] = []

    @Option(
        name: .customLong("allow-spiffe-id"),
        help: ArgumentHelp(
            "Allow X.509-SVIDs whose SPIFFE ID matches (* one path segment, a final ** the rest; repeatable).",
            valueName: "pattern"))
    var allowSPIFFEID: [String] = []

    @Option(
        name: .customLong("allow-email"),
        help: ArgumentHelp("Allow clients with this e-mail SAN (repeatable).", valueName: "addr"))
    var allowEmail: [String] = []

    @Option(
        name: .customLong("allow-ou"),
        help: ArgumentHelp("Allow clients whose subject has this organizational unit (repeatable).", valueName: "ou"))
    var allowOU: [String] = []

    @Option(
        name: .customLong("allow-spki-sha256"),
        help: ArgumentHelp(
            "Allow the client key with this SHA-256 (cert inspect's Public key SHA-256; repeatable).", valueName: "hex")
    )
    var allowSPKI: [String] = []

    @Flag(help: "Allow any client whose certificate the CA issued.")
    var allowAnyClient = false

    func apply(to fields: inout ConfigFields) {
        fields.set("allow-cn", list: allowCN)
        fields.set("allow-dns", list: allowDNS)
        fields.set("allow-uri", list: allowURI)
        fields.set("allow-spiffe-id", list: allowSPIFFEID)
        fields.set("allow-email", list: allowEmail)
        fields.set("allow-ou", list: allowOU)
        fields.set("allow-spki-sha256", list: allowSPKI)
        fields.set("allow-any-client", flag: allowAnyClient)
    }
}

/// `--crl-expired allow|deny`.
enum CRLExpiredPolicy: String, ExpressibleByArgument, CaseIterable {
    case allow, deny
}

extension TLSPolicy.MinimumVersion: ExpressibleByArgument {}
extension Framing: ExpressibleByArgument {}

/// A `TimeAmount` as seconds for people: `10`, `0.5`.
func formatSeconds(_ amount: TimeAmount) -> String {
    (Double(amount.nanoseconds) / 1e9).formatted()
}

/// Seconds as a NIO `TimeAmount`.
func timeAmount(seconds: Double) -> TimeAmount {
    .nanoseconds(Int64(seconds * 1e9))
}

/// `--log-format` and `--metrics` of `serve` and `ca serve`.
struct ProcessOutputOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Log format: text (default) or json (one object per line, stable field names).", valueName: "format"))
    var logFormat: LogFormat?

    @Option(
        help: ArgumentHelp(
            "Serve Prometheus metrics on http://HOST:PORT/metrics and a health check on /healthz.",
            valueName: "host:port"), transform: Endpoint.argument)
    var metrics: Endpoint?
}
