import ArgumentParser
import Foundation
import NIOCore
import SecureChannel
import SecureChannelEST
import SecureChannelMetrics
import SecureChannelPKI

/// A length of time on the command line: `90` (seconds), `90s`, `10m`, `24h`, `7d`.
struct TimeSpan: ExpressibleByArgument, CustomStringConvertible {
    var seconds: TimeInterval

    init(seconds: TimeInterval) { self.seconds = seconds }

    init?(argument: String) {
        guard let parsed = try? Self.parse(argument) else { return nil }
        self = parsed
    }

    static func parse(_ text: String) throws -> TimeSpan {
        let units: [Character: TimeInterval] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
        var digits = Substring(text)
        var unit: TimeInterval = 1
        if let last = text.last, let factor = units[last] {
            digits = digits.dropLast()
            unit = factor
        }
        guard let value = Int(digits), value > 0 else {
            throw ArgumentText("expected a positive length of time: 90s, 10m, 24h or 7d")
        }
        return TimeSpan(seconds: TimeInterval(value) * unit)
    }

    static func argument(_ text: String) throws -> TimeSpan { try parse(text) }

    var description: String {
        let whole = Int(seconds)
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] where whole % size == 0 {
            return "\(whole / size)\(unit)"
        }
        return "\(whole)s"
    }
}

/// `securechannel ca token`.
struct CATokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Make a one-time token that 'securechannel enroll' exchanges for one certificate at 'ca serve'.",
        discussion: """
            The token binds the kind, the name, the DNS names, IP addresses or SPIFFE ID, and the lifetime of the \
            certificate; the request made with it must ask for exactly that. It works once, until --ttl has passed. \
            Only its SHA-256 is stored. The token alone goes to stdout; what it allows to stderr.

            EXAMPLES:
              securechannel ca token --dir issuing --kind client --name Chris \\
                  --ttl 10m --lifetime 24h
              securechannel ca token --dir issuing --kind server --name Jill \\
                  --dns jill.example
              securechannel ca token --dir issuing --kind workload \\
                  --spiffe-id spiffe://example.org/ns/web
            """
    )

    @OptionGroup var ca: CAOptions

    @Option(
        help: ArgumentHelp("server, client or workload.", valueName: "kind"),
        completion: .list(["server", "client", "workload"]))
    var kind: String

    @Option(help: "The certificate's common name (a workload's defaults to its SPIFFE ID's last segment).")
    var name: String?

    @Option(help: ArgumentHelp("A DNS name the certificate carries (server, workload); repeatable.", valueName: "name"))
    var dns: [String] = []

    @Option(
        help: ArgumentHelp("An IP address the certificate carries (server, workload); repeatable.", valueName: "ip"))
    var ip: [String] = []

    @Option(help: ArgumentHelp("The workload's SPIFFE ID (its one URI name).", valueName: "id"))
    var spiffeID: String?

    @Option(
        help: ArgumentHelp("How long the token may be used (default: 10m).", valueName: "time"),
        transform: TimeSpan.argument)
    var ttl = TimeSpan(seconds: 600)

    @Option(
        help: ArgumentHelp(
            "The certificate's lifetime (default: the online CA's --default-lifetime).", valueName: "time"),
        transform: TimeSpan.argument)
    var lifetime: TimeSpan?

    func validate() throws {
        guard ["server", "client", "workload"].contains(kind) else {
            throw ValidationError("--kind must be server, client or workload (got '\(kind)')")
        }
        if kind == "workload" && spiffeID == nil {
            throw ValidationError("a workload token needs --spiffe-id spiffe://TRUST-DOMAIN/PATH")
        }
        if kind != "workload" && spiffeID != nil {
            throw ValidationError("--spiffe-id is for --kind workload")
        }
        if kind != "workload" && name == nil { throw ValidationError("give the certificate's --name") }
        if kind == "client" && !(dns.isEmpty && ip.isEmpty) {
            throw ValidationError("a client certificate carries no --dns or --ip names")
        }
        if kind == "server" && dns.isEmpty && ip.isEmpty {
            throw ValidationError("a server token needs at least one --dns name or --ip address")
        }
    }

    func run() async throws {
        let authority = try ca.open()
        let certificateKind = CertificateKind(rawValue: kind) ?? .client
        let uris = spiffeID.map { [$0] } ?? []
        if let spiffeID { try IssuanceRequest.validateSPIFFEID(spiffeID) }
        let commonName = name ?? spiffeID?.split(separator: "/").last.map(String.init) ?? ""
        let expires = Date() + ttl.seconds
        let grant = EnrollmentGrant(
            kind: certificateKind, name: commonName, dnsNames: dns, ipAddresses: ip, uris: uris,
            lifetime: lifetime?.seconds ?? 0, expires: expires)
        let token = try authority.makeToken(grant)
        Console.out(token)
        let names = (dns + ip + uris).joined(separator: ", ")
        Console.error(
            "token for a \(kind) certificate \"\(commonName)\"\(names.isEmpty ? "" : " (\(names))"), lifetime \(lifetime?.description ?? "the CA's default"); usable once until \(CertificateDescription.format(expires))"
        )
    }
}

/// `securechannel ca serve`.
struct CAServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the CA online: EST (RFC 7030) enrollment and renewal over mTLS.",
        discussion: """
            Serves https://HOST:PORT/.well-known/est/: GET cacerts (the chain to the root, PKCS#7), POST \
            simpleenroll (a CSR and a token from 'ca token', as HTTP Basic password or Bearer), POST \
            simplereenroll (a CSR, authorised by the current certificate as TLS client certificate) and GET crl \
            (the CA's CRL, DER, signed again after --crl-refresh). Run it from an intermediate CA and keep the \
            root offline. --cert and --key are this listener's server certificate (issue one with 'ca issue \
            server'); client certificates are verified against --ca (default: the CA's root).

            SIGNALS: SIGTERM or SIGINT drain and stop; SIGHUP (or a change of --cert, --key, --ca) reloads the \
            listener's files.

            EXAMPLES:
              securechannel ca serve --dir issuing --listen 127.0.0.1:9443 \\
                  --cert issuing/est.crt --key issuing/est.key
              securechannel ca serve --dir issuing --listen 0.0.0.0:9443 \\
                  --cert est.crt --key est.key --default-lifetime 24h \\
                  --max-lifetime 7d --metrics 127.0.0.1:9090 --log-format json
            """
    )

    @OptionGroup var ca: CAOptions

    @Option(help: ArgumentHelp("Where to listen.", valueName: "host:port"), transform: Endpoint.argument)
    var listen: Endpoint

    @Option(
        help: ArgumentHelp("This listener's certificate (PEM, with its chain).", valueName: "file"),
        completion: .file())
    var cert: String

    @Option(help: ArgumentHelp("Its private key.", valueName: "file"), completion: .file())
    var key: String

    @Option(
        help: ArgumentHelp(
            "CA bundle that client certificates are verified against (default: the CA's root).", valueName: "file"),
        completion: .file())
    var trust: String?

    @Option(
        help: ArgumentHelp("Lifetime of a certificate whose token names none (default: 24h).", valueName: "time"),
        transform: TimeSpan.argument)
    var defaultLifetime = TimeSpan(seconds: 24 * 3600)

    @Option(
        help: ArgumentHelp("No certificate is issued or renewed for longer (default: no cap).", valueName: "time"),
        transform: TimeSpan.argument)
    var maxLifetime: TimeSpan?

    @Option(help: ArgumentHelp("Requests a minute from one client address before 429 (default: 600).", valueName: "n"))
    var rateLimit = 600

    @Option(
        help: ArgumentHelp("Sign a new CRL for GET crl once the last is this old (default: 60s).", valueName: "time"),
        transform: TimeSpan.argument)
    var crlRefresh = TimeSpan(seconds: 60)

    @Flag(help: "Run a root CA online anyway (a root's key belongs offline; serve from an intermediate).")
    var allowRoot = false

    @OptionGroup var output: ProcessOutputOptions

    func validate() throws {
        guard rateLimit > 0 else { throw ValidationError("--rate-limit must be 1 or more (got \(rateLimit))") }
    }

    func run() async throws {
        let authority = try ca.open()
        guard authority.isIntermediate || allowRoot else {
            throw CLIError(
                "\(ca.dir) is a root CA, whose key belongs offline: make an intermediate with 'securechannel ca init --dir issuing --parent \(ca.dir)' and serve that (or pass --allow-root)"
            )
        }
        let format = output.logFormat ?? .text
        let logger = format.makeLogger(label: "securechannel.ca-serve")
        if !authority.isIntermediate {
            logger.warning(
                "\(ca.dir) is a root CA running online (--allow-root): a compromise of this host is a compromise of every certificate under it",
                metadata: ["event": "root-online"])
        }
        let endpoint = output.metrics.map { PrometheusEndpoint(host: $0.host, port: $0.port, logger: logger) }
        let trustFile: String
        if let trust {
            trustFile = trust
        } else {
            // The root: the last certificate of the chain, written where the listener's reload can read it.
            let chain = try authority.chain()
            trustFile = "\(ca.dir)/\(CertificateAuthority.rootFileName)"
            try SecureFile.write(
                try CertificateIO.pem([chain[chain.count - 1]]), to: trustFile, mode: SecureFile.publicMode)
        }
        var configuration = ESTServerConfiguration(
            listen: .tcp(host: listen.host, port: listen.port),
            files: TLSMaterialFiles(certificate: cert, key: key, ca: trustFile))
        configuration.defaultLifetime = defaultLifetime.seconds
        configuration.maximumLifetime = maxLifetime?.seconds
        configuration.requestsPerMinute = rateLimit
        configuration.crlRefresh = crlRefresh.seconds
        configuration.metricsFactory = endpoint?.factory
        let server = try ESTServer(configuration: configuration, authority: authority, logger: logger)
        let name = authority.certificate.subject.description
        try await ServiceRunner.run(
            [
                .init(service: server) {
                    let address = try await server.listeningAddress()
                    logger.info(
                        "online CA \(name): EST at https://\(Endpoint.display(address))/.well-known/est/",
                        metadata: ["event": "started", "address": "\(Endpoint.display(address))"])
                    return "listening on \(Endpoint.display(address))"
                }
            ], metrics: endpoint, format: format, logger: logger)
    }
}
