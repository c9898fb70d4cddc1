import ArgumentParser
import Foundation
import SecureChannelPKI

/// `securechannel cert …`: look at and check certificates, ours or OpenSSL's.
struct CertCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cert",
        abstract: "Inspect and verify certificates (PEM or DER, ours or OpenSSL's); make a key and a CSR.",
        subcommands: [CertInspectCommand.self, CertVerifyCommand.self, CertRequestCommand.self]
    )
}

/// `securechannel cert inspect FILE`.
struct CertInspectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a certificate: names, validity, usages, key, fingerprint (every certificate of a chain).",
        discussion: """
            Reads PEM or DER: certificates (v1 and v3), private keys (PKCS#8, encrypted PKCS#8, PKCS#1, SEC1), \
            CRLs (ours and openssl ca -gencrl's) and certificate requests (whether the self-signature holds). \
            FILE - reads standard input.

            EXAMPLES:
              securechannel cert inspect pki/Jill.crt
              securechannel cert inspect --json chain.pem
              openssl req -new -key k.pem -subj /CN=x | securechannel cert inspect -
            """
    )

    @Argument(
        help: "A certificate, chain, key, CRL or CSR file, PEM or DER; - for standard input.", completion: .file())
    var file: String

    @Flag(help: "Print JSON instead of text.")
    var json = false

    @Option(
        help: ArgumentHelp("File whose first line decrypts an encrypted key in FILE.", valueName: "file"),
        completion: .file())
    var passphraseFile: String?

    func validate() throws {
        try Check.oneStandardInput(("FILE", file), ("--passphrase-file", passphraseFile))
    }

    func run() async throws {
        let description = try FileDescription(
            bytes: try SecureFile.read(file), source: file == "-" ? "standard input" : file,
            passphrase: try Passphrase.resolve(file: passphraseFile))
        if !description.keys.isEmpty, let warning = SecureFile.keyExposureWarning(file) {
            Console.error("warning: \(warning)")
        }
        if json {
            Console.out(try JSONText.encode(description))
            return
        }
        let certificates = description.certificates
        let blocks =
            certificates.enumerated().map { $1.text(index: $0 + 1, of: certificates.count) }
            + description.keys.map { $0.text() } + description.crls.map { $0.text() }
            + description.requests.map { $0.text() }
        Console.out(blocks.joined(separator: "\n\n"))
    }
}

/// `securechannel cert verify`.
struct CertVerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify a certificate against a CA: prints OK, or the reason it fails.",
        discussion: """
            Reasons: expired, not yet valid, unknown issuer, wrong purpose, name mismatch, bad signature. \
            The exit status is 0 only for OK.

            EXAMPLES:
              securechannel cert verify --ca pki/ca.crt --purpose server \\
                  --server-name localhost pki/Jill.crt
              securechannel cert verify --ca pki/ca.crt --purpose client pki/Chris.crt
            """
    )

    @Option(help: ArgumentHelp("The CA certificate(s) to trust.", valueName: "ca-file"), completion: .file())
    var ca: String

    @Option(help: "Require this extended key usage: server or client.")
    var purpose: CertificatePurpose?

    @Option(help: "Require this DNS name or IP address among the certificate's names (as a client checks it).")
    var serverName: String?

    @Option(name: .customLong("host"), help: .hidden)
    var host: String?

    @Option(
        help: ArgumentHelp("Also check that this private key belongs to the certificate.", valueName: "key-file"),
        completion: .file())
    var key: String?

    @Option(
        help: ArgumentHelp("File whose first line decrypts an encrypted --key.", valueName: "file"), completion: .file()
    )
    var passphraseFile: String?

    @Argument(
        help: "The certificate (with any intermediates after it), PEM or DER; - for standard input.",
        completion: .file())
    var file: String

    func validate() throws {
        if serverName != nil && host != nil {
            throw ValidationError("--host is the old name of --server-name: give one of them")
        }
        try Check.oneStandardInput(("FILE", file), ("--ca", ca), ("--key", key), ("--passphrase-file", passphraseFile))
    }

    func run() async throws {
        let roots = try CertificateIO.parseCertificates(try SecureFile.read(ca), source: ca)
        let chain = try CertificateIO.parseCertificates(try SecureFile.read(file), source: file)
        if let key {
            let privateKey = try PrivateKeyIO.parse(
                try SecureFile.read(key), passphrase: try Passphrase.resolve(file: passphraseFile), source: key)
            if let warning = SecureFile.keyExposureWarning(key) { Console.error("warning: \(warning)") }
            guard privateKey.publicKey == chain[0].publicKey else {
                throw PKIError(.keyMismatch, "\(key) does not belong to \(file); pass the key that was issued with it")
            }
        }
        try await CertificateVerification.verify(
            chain: chain, roots: roots, purpose: purpose, host: serverName ?? host)
        Console.out("OK")
    }
}

extension CertificatePurpose: ExpressibleByArgument {}
