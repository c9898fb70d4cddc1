import ArgumentParser
import Foundation
import SecureChannel
import SecureChannelEST
import SecureChannelPKI
import X509

/// `securechannel enroll`.
struct EnrollCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enroll",
        abstract: "Get a first certificate from the online CA ('ca serve') with a one-time token.",
        discussion: """
            Trusts the CA by the SHA-256 fingerprint of its root (printed by 'ca init', or 'cert inspect \
            root/ca.crt'), makes a new key and a request for exactly what the token allows, and writes the key \
            (0600), the certificate with its chain, and the CA bundle (the root), each atomically. Nothing is \
            written unless the CA issued the certificate.

            EXAMPLES:
              securechannel enroll --ca-url https://ca.internal:9443 \\
                  --ca-fingerprint 3F:1A:…:9C --token "$TOKEN" \\
                  --key-out chris.key --cert-out chris.crt --ca-out ca.crt
            """
    )

    @Option(help: ArgumentHelp("The online CA: https://HOST:PORT.", valueName: "url"))
    var caURL: String

    @Option(
        help: ArgumentHelp(
            "SHA-256 fingerprint of the CA's root certificate (hex, colons allowed).", valueName: "sha256"))
    var caFingerprint: String

    @Option(
        help: ArgumentHelp("The one-time token from 'ca token' ('-' reads it from standard input).", valueName: "token")
    )
    var token: String

    @Option(
        help: ArgumentHelp("Where to write the new private key (mode 0600).", valueName: "file"), completion: .file())
    var keyOut: String

    @Option(help: ArgumentHelp("Where to write the certificate and its chain.", valueName: "file"), completion: .file())
    var certOut: String

    @Option(help: ArgumentHelp("Where to write the CA bundle (the root).", valueName: "file"), completion: .file())
    var caOut: String

    @OptionGroup var keyType: KeyTypeOption

    func run() async throws {
        let text = token == "-" ? String(decoding: try SecureFile.read("-"), as: UTF8.self) : token
        let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let claims = EnrollmentTokenText.claims(token) else {
            throw CLIError("the token is not one from 'securechannel ca token'; copy it whole")
        }
        for path in [keyOut, certOut, caOut] where SecureFile.exists(path) {
            throw CLIError("\(path) already exists; enroll writes new files only (renew with 'securechannel renew')")
        }
        let (client, chain) = try await ESTClient.bootstrap(url: caURL, fingerprint: caFingerprint)
        let (key, csr) = try CertificateRequest.make(
            name: claims.name, dnsNames: claims.dns, ipAddresses: claims.ip, uris: claims.uri,
            keyType: keyType.keyType)
        let certificate = try await client.enroll(csr: try csr.serializeAsPEM().derBytes, token: token)
        try await ESTClient.checkIssued(certificate, chain: chain, trust: chain.filter { $0.subject == $0.issuer })
        try RenewalFiles(key: keyOut, certificate: certOut, ca: caOut).write(
            key: key, certificate: certificate, chain: chain)
        Console.out(
            "enrolled \(claims.kind) certificate \(certificate.subject) (serial \(SerialNumbers.hex(certificate.serialNumber)), valid until \(CertificateDescription.format(certificate.notValidAfter)))"
        )
        Console.out("  key: \(keyOut) (mode 0600)\n  certificate: \(certOut)\n  CA bundle: \(caOut)")
    }
}

/// `securechannel renew`.
struct RenewCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "renew",
        abstract: "Renew a certificate at the online CA ('ca serve'), once or as a daemon.",
        discussion: """
            Authenticates with the current certificate (EST simplereenroll), asks for the same name and subject \
            alternative names with a new key, then replaces the key and the certificate (the key first, so no \
            reader ever sees the new certificate with the old key) and refreshes the CA bundle from the CA \
            (fetched over the connection verified with the current bundle). With --daemon it renews at two thirds \
            of each certificate's lifetime (±10 %), retrying with backoff until the certificate expires. \
            --exec runs a command after each renewal (e.g. a reload).

            EXAMPLES:
              securechannel renew --ca-url https://ca.internal:9443 \\
                  --cert chris.crt --key chris.key --ca ca.crt
              securechannel renew --ca-url https://ca.internal:9443 \\
                  --cert jill.crt --key jill.key --ca ca.crt \\
                  --daemon --exec 'systemctl reload myservice'
            """
    )

    @Option(help: ArgumentHelp("The online CA: https://HOST:PORT.", valueName: "url"))
    var caURL: String

    @Option(help: ArgumentHelp("The current certificate (replaced).", valueName: "file"), completion: .file())
    var cert: String

    @Option(help: ArgumentHelp("Its private key (replaced).", valueName: "file"), completion: .file())
    var key: String

    @Option(
        help: ArgumentHelp("The CA bundle the online CA is verified against (refreshed).", valueName: "file"),
        completion: .file())
    var ca: String

    @Flag(help: "Keep running: renew at two thirds of each lifetime, retry with backoff until expiry.")
    var daemon = false

    @Option(
        help: ArgumentHelp(
            "A command run (by /bin/sh) after each renewal; if it fails, renew exits 1 (--daemon says so and goes on).",
            valueName: "command"))
    var exec: String?

    func run() async throws {
        let files = RenewalFiles(key: key, certificate: cert, ca: ca)
        guard daemon else {
            // Renewed, but the command that should pick it up failed: the caller (cron, a unit) must see it.
            if let failure = try await renewOnce(files) { throw CLIError(failure) }
            return
        }
        var failures = 0
        while true {
            let current = try TLSIdentity.load(certificateFile: cert, keyFile: key)
            let due = RenewalSchedule.due(current.leaf)
            let wait = due.timeIntervalSinceNow
            if wait > 0 {
                Console.error(
                    "next renewal of \(current.leaf.subject) at \(CertificateDescription.format(due)) (in \(Int(wait.rounded())) s)"
                )
                try await Task.sleep(for: .milliseconds(Int64(wait * 1000)))
            }
            do {
                _ = try await renewOnce(files)
                failures = 0
            } catch {
                failures += 1
                let left = current.leaf.notValidAfter.timeIntervalSinceNow
                guard left > 0 else {
                    throw CLIError(
                        "\(cert) expired at \(CertificateDescription.format(current.leaf.notValidAfter)) before it could be renewed (\(error)); enroll again with a new token"
                    )
                }
                let backoff = RenewalSchedule.backoff(failures: failures, left: left)
                Console.error("renewal failed (\(error)); retrying in \(Int(backoff.rounded())) s")
                try await Task.sleep(for: .milliseconds(Int64(backoff * 1000)))
            }
        }
    }

    /// Renews and runs `--exec`; returns why `--exec` failed, if it did (the daemon says it and carries on).
    private func renewOnce(_ files: RenewalFiles) async throws -> String? {
        let certificate = try await Renewal.renew(url: caURL, files: files, trustFile: ca)
        Console.out(
            "renewed \(certificate.subject) (serial \(SerialNumbers.hex(certificate.serialNumber)), valid until \(CertificateDescription.format(certificate.notValidAfter)))"
        )
        guard let exec else { return nil }
        let status = try ShellCommand.run(exec)
        guard status != 0 else { return nil }
        let failure = "the certificate was renewed, but --exec '\(exec)' exited with status \(status)"
        if daemon { Console.error(failure) }
        return failure
    }
}

/// Runs `/bin/sh -c COMMAND` and waits for it.
enum ShellCommand {
    static func run(_ command: String) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        do {
            try process.run()
        } catch {
            throw CLIError("cannot run --exec '\(command)': \(error.localizedDescription)")
        }
        process.waitUntilExit()
        return process.terminationStatus
    }
}
