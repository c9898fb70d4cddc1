import ArgumentParser
import Foundation
import SecureChannelPKI

/// `securechannel cert request`: a key and a CSR, made where the key will be used.
struct CertRequestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "request",
        abstract:
            "Make a private key and a certificate signing request (CSR) for the CA; the key never leaves this machine.",
        discussion: """
            Writes the key (mode 0600) and the CSR (PEM); refuses to overwrite either. Send the CSR to the CA's \
            machine and sign it there with 'securechannel ca sign', which decides server or client and checks \
            the names against that kind. Bring back the certificate; the key stays here.

            EXAMPLES:
              securechannel cert request --name jill.example --dns jill.example \\
                  --ip 10.0.0.5 --key-out /etc/securechannel/jill.key --csr-out jill.csr
              securechannel cert request --name Chris --key-out chris.key \\
                  --csr-out chris.csr
              securechannel ca sign --dir pki --csr jill.csr --kind server --days 90
            """
    )

    @Option(help: "The subject's name (its CN).")
    var name: String

    @Option(
        help: ArgumentHelp("Where to write the new private key (mode 0600).", valueName: "file"), completion: .file())
    var keyOut: String

    @Option(help: ArgumentHelp("Where to write the CSR (PEM).", valueName: "file"), completion: .file())
    var csrOut: String

    @Option(help: ArgumentHelp("A DNS name for a server certificate (repeatable).", valueName: "name"))
    var dns: [String] = []

    @Option(help: ArgumentHelp("An IP address for a server certificate (repeatable).", valueName: "address"))
    var ip: [String] = []

    @Option(help: ArgumentHelp("An e-mail address for a client certificate (repeatable).", valueName: "address"))
    var email: [String] = []

    @Option(help: ArgumentHelp("A URI (e.g. a SPIFFE ID) for a client certificate (repeatable).", valueName: "uri"))
    var uri: [String] = []

    @OptionGroup var key: KeyTypeOption

    func run() async throws {
        for path in [keyOut, csrOut] where SecureFile.exists(path) {
            throw PKIError(.fileExists, "\(path) already exists; choose another path or remove the old file")
        }
        let (key, csr) = try CertificateRequest.make(
            name: name, dnsNames: dns, ipAddresses: ip, emails: email, uris: uri,
            keyType: key.keyType)
        try SecureFile.write(try PrivateKeyIO.pem(key), to: keyOut, mode: SecureFile.privateMode, overwrite: false)
        do {
            try SecureFile.write(
                try CertificateRequest.pem(csr), to: csrOut, mode: SecureFile.publicMode, overwrite: false)
        } catch {
            unlink(keyOut)  // all or nothing
            throw error
        }
        Console.out("made a key and a certificate request for \(name)")
        Console.out("  private key: \(keyOut) (mode 0600; keep it on this machine)")
        Console.out(
            "  request: \(csrOut) (sign it with 'securechannel ca sign --dir DIR --csr \(csrOut) --kind server|client')"
        )
    }
}

/// `securechannel ca sign`: issue a certificate for a CSR's key.
struct CASignCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sign",
        abstract: "Issue a server or client certificate for the key in a certificate signing request (CSR).",
        discussion: """
            Checks the CSR's signature (its maker holds the key), then applies the kind's policy: a server \
            certificate carries only the request's DNS and IP names (at least one), a client certificate only its \
            e-mail and URI names, each with only its own extended key usage. A request asking for anything else \
            (another name type, CA rights, other usages) is refused, not trimmed. Writes PREFIX.crt only (default \
            DIR/NAME.crt, NAME being the request's CN) and records it in the inventory.

            EXAMPLES:
              securechannel ca sign --dir pki --csr jill.csr --kind server
              securechannel ca sign --dir pki --csr chris.csr --kind client --days 30 \\
                  --out certs/chris
            """
    )

    @OptionGroup var ca: CAOptions

    @Option(
        help: ArgumentHelp(
            "The CSR (PEM or DER; - for standard input), e.g. from 'securechannel cert request' or 'openssl req'.",
            valueName: "file"), completion: .file())
    var csr: String

    @Option(help: "server, client or workload (an X.509-SVID: the request's one SPIFFE ID, both usages).")
    var kind: CertificateKind

    @Option(parsing: .unconditional, help: "Validity in days (clamped to the CA's own expiry).")
    var days: Int = IssuanceRequest.defaultDays

    @Option(help: ArgumentHelp("Write PREFIX.crt (default: DIR/NAME).", valueName: "prefix"), completion: .file())
    var out: String?

    func validate() throws {
        try Check.days(days)
        try Check.oneStandardInput(("--csr", csr), ("--passphrase-file", ca.passphraseFile))
    }

    func run() async throws {
        let authority = try ca.open()
        let issued = try authority.sign(csrFile: csr, kind: kind, days: days, outPrefix: out)
        let notAfter = CertificateDescription.format(issued.certificate.notValidAfter)
        let names = CertificateDescription.alternativeNames(of: issued.certificate)
        Console.out(
            "signed \(kind.rawValue) certificate for \(issued.certificate.subject) (serial \(issued.serial), valid until \(notAfter))"
        )
        Console.out("  certificate: \(issued.certificatePath)")
        Console.out("  names: \(names.isEmpty ? "none" : names.joined(separator: ", "))")
        Console.out("  private key: not here (it stays where the request was made)")
        for warning in issued.warnings { Console.error("warning: \(warning)") }
    }
}

extension CertificateKind: ExpressibleByArgument {}
