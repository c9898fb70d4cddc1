import ArgumentParser
import Foundation
import SecureChannelPKI

/// `securechannel ca revoke`.
struct CARevokeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke",
        abstract: "Revoke certificates and write a fresh CRL to DIR/crl.pem.",
        discussion: """
            By --name, every unrevoked certificate with that name is revoked; by --serial or --file (the FILE \
            column of 'ca list'), just that one. \
            Servers started with --crl DIR/crl.pem pick the new CRL up within 2 seconds and close the revoked \
            client's open connections.

            EXAMPLES:
              securechannel ca revoke --dir pki --name Chris --reason keyCompromise
              securechannel ca revoke --dir pki --serial 5A4125D6652FACB5F95864D7EE479060
            """
    )

    @OptionGroup var ca: CAOptions

    @Option(help: "Revoke every unrevoked certificate with this name.")
    var name: String?

    @Option(help: ArgumentHelp("Revoke the certificate with this serial (hex).", valueName: "hex"))
    var serial: String?

    @Option(
        help: ArgumentHelp(
            "Revoke the certificate with this file prefix (the FILE column of 'ca list', e.g. chris-laptop).",
            valueName: "prefix"))
    var file: String?

    @Option(
        help: ArgumentHelp(
            "RFC 5280 reason: \(RevocationReason.allValueStrings.joined(separator: ", ")) (default: unspecified).",
            valueName: "reason"),
        completion: .list(RevocationReason.allValueStrings), transform: RevocationReason.argument)
    var reason: RevocationReason = .unspecified

    func validate() throws {
        guard [name, serial, file].compactMap({ $0 }).count == 1 else {
            throw ValidationError("give exactly one of --name NAME, --serial HEX or --file PREFIX")
        }
    }

    func run() async throws {
        let why = reason
        let authority = try ca.open()
        let revoked = try authority.revoke(name: name, serial: serial, file: file, reason: why)
        for entry in revoked {
            Console.out(
                "revoked \(entry.kind.rawValue) certificate \(entry.subject) (serial \(entry.serial), reason \(why.name))"
            )
        }
        Console.out("wrote \(ca.dir)/\(CertificateAuthority.crlFileName)")
    }
}

/// `securechannel ca crl`.
struct CACRLCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crl",
        abstract: "Sign and write a CRL (X.509 v2) of every certificate revoked so far.",
        discussion: """
            Re-run before nextUpdate (--days, default 7): servers refuse an expired CRL unless --crl-expired allow.

            EXAMPLES:
              securechannel ca crl --dir pki
              securechannel ca crl --dir pki --out /srv/www/barry.crl --der --days 30
            """
    )

    @OptionGroup var ca: CAOptions

    @Option(help: ArgumentHelp("Where to write (default DIR/crl.pem).", valueName: "file"), completion: .file())
    var out: String?

    @Option(parsing: .unconditional, help: "Days until nextUpdate.")
    var days: Int = CertificateAuthority.defaultCRLDays

    func validate() throws { try Check.days(days) }

    @Flag(help: "Write DER instead of PEM.")
    var der = false

    func run() async throws {
        let authority = try ca.open()
        let crl = try authority.generateCRL(out: out, der: der, days: days)
        let path = out ?? "\(ca.dir)/\(CertificateAuthority.crlFileName)"
        Console.out(
            "wrote \(path): CRL number \(crl.number ?? "?"), \(crl.entries.count) revoked, next update \(crl.nextUpdate.map(CertificateDescription.format) ?? "-")"
        )
    }
}

/// `securechannel ca renew`.
struct CARenewCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "renew",
        abstract: "Issue a new certificate for the same identity (new key unless --reuse-key).",
        discussion: """
            Replaces the certificate and key files in place (each atomically, key first) unless --out is given, so \
            a server that watches them rotates without a restart. The old certificate stays valid until it expires \
            or is revoked.

            EXAMPLES:
              securechannel ca renew --dir pki --name Jill
              securechannel ca renew --dir pki --name Chris --reuse-key --days 30
            """
    )

    @OptionGroup var ca: CAOptions

    @Option(help: "The name of the certificate to renew (the newest with this name).")
    var name: String

    @Flag(help: "Keep the existing key.")
    var reuseKey = false

    @Option(parsing: .unconditional, help: "Validity in days of the new certificate.")
    var days: Int = IssuanceRequest.defaultDays

    @Option(
        help: ArgumentHelp("Write PREFIX.crt and PREFIX.key instead of replacing the files.", valueName: "prefix"),
        completion: .file())
    var out: String?

    func validate() throws { try Check.days(days) }

    func run() async throws {
        let authority = try ca.open()
        let issued = try authority.renew(name: name, reuseKey: reuseKey, days: days, outPrefix: out)
        Console.out(
            "renewed \(name): serial \(issued.serial), valid until \(CertificateDescription.format(issued.certificate.notValidAfter))\(reuseKey ? " (same key)" : " (new key)")"
        )
        Console.out("  certificate: \(issued.certificatePath)")
        Console.out("  private key: \(issued.keyPath) (mode 0600)")
        for warning in issued.warnings { Console.error("warning: \(warning)") }
    }
}

/// `securechannel ca tidy`.
struct CATidyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tidy",
        abstract: "Remove certificates that expired long ago from the inventory and, if revoked, from the CRL.",
        discussion: """
            Short-lived certificates pile up: tidy keeps the inventory to what can still matter. A revoked \
            certificate's key stays on the list of keys never certified again.

            EXAMPLES:
              securechannel ca tidy --dir pki
              securechannel ca tidy --dir pki --older-than 7
            """
    )

    @OptionGroup var ca: CAOptions

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp(
            "Remove certificates expired more than this many days ago (default: \(CertificateAuthority.defaultTidyDays)).",
            valueName: "days"))
    var olderThan: Int = CertificateAuthority.defaultTidyDays

    func validate() throws {
        guard olderThan >= 0 else { throw ValidationError("--older-than must be 0 days or more (got \(olderThan))") }
    }

    func run() async throws {
        let authority = try ca.open()
        let removed = try authority.tidy(olderThanDays: olderThan)
        guard !removed.isEmpty else {
            Console.out("nothing to remove: no certificate expired more than \(DaysLeft.days(olderThan)) ago")
            return
        }
        Console.out("removed \(removed.count) certificate(s) expired more than \(DaysLeft.days(olderThan)) ago:")
        for entry in removed {
            let revoked = entry.revocation.map { ", revoked (\($0.reason)), dropped from the CRL" } ?? ""
            Console.out(
                "  \(entry.serial)  \(entry.subject)  expired \(CertificateDescription.format(entry.notAfter))\(revoked)"
            )
        }
        if removed.contains(where: { $0.revocation != nil }) {
            Console.out("wrote \(ca.dir)/\(CertificateAuthority.crlFileName)")
        }
    }
}
