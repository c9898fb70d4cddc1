import ArgumentParser
import Foundation
import SecureChannelPKI

/// `securechannel ca init`.
struct CAInitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a new CA: DIR/ca.crt and DIR/ca.key (mode 0600).",
        discussion: """
            Refuses to overwrite an existing CA. With --passphrase-file the key is written as encrypted PKCS#8 \
            (PBES2: PBKDF2-HMAC-SHA256, AES-256-CBC); every command that signs then needs the passphrase.

            An offline root with online intermediates: make the root with --intermediates (pathlen 1), then each \
            intermediate with --parent ROOT (the root's key is needed only then and to revoke an intermediate). \
            Leaves an intermediate issues are written with its certificate after theirs, so peers that trust \
            only the root verify them. --permit-dns and --permit-uri add name constraints.

            EXAMPLES:
              securechannel ca init --dir pki --name Barry
              securechannel ca init --dir pki --key-type ecdsa-p384 --days 1825 \\
                  --passphrase-file pass.txt
              securechannel ca init --dir root --name "Barry Root" --intermediates
              securechannel ca init --dir issuing --parent root --name "Barry Issuing" \\
                  --permit-dns .example.com --permit-uri example.org
            """
    )

    @OptionGroup var ca: CAOptions

    @Option(help: "The CA's name (its CN).")
    var name: String = CertificateAuthority.defaultName

    @OptionGroup var key: KeyTypeOption

    @Option(parsing: .unconditional, help: "Validity in days.")
    var days: Int = CertificateAuthority.defaultDays

    @Flag(help: "A root that will sign intermediate CAs (pathlen 1) instead of leaves directly.")
    var intermediates = false

    @Flag(help: "Encrypt the new key with a passphrase asked for twice on the terminal (no echo).")
    var encrypt = false

    @Option(
        help: ArgumentHelp("Make an intermediate CA signed by the CA in this directory (the root).", valueName: "root"),
        completion: .directory)
    var parent: String?

    @Option(
        help: ArgumentHelp(
            "The parent CA key's passphrase file (or SECURECHANNEL_CA_PASSPHRASE, or the terminal).",
            valueName: "file"), completion: .file())
    var parentPassphraseFile: String?

    @Option(
        help: ArgumentHelp(
            "The parent CA's store (default: SECURECHANNEL_CA_STORE, else ROOT/ca.db).", valueName: "store"))
    var parentStore: String?

    @Option(
        help: ArgumentHelp(
            "Name constraint of an intermediate: its leaves' DNS names must end in SUFFIX (repeatable).",
            valueName: "suffix"))
    var permitDNS: [String] = []

    @Option(
        help: ArgumentHelp(
            "Name constraint of an intermediate: its leaves' URIs (SPIFFE IDs) must have this host, e.g. the trust domain (repeatable).",
            valueName: "host"))
    var permitURI: [String] = []

    func validate() throws {
        try Check.days(days)
        if parent == nil && (!permitDNS.isEmpty || !permitURI.isEmpty) {
            throw ValidationError("--permit-dns and --permit-uri constrain an intermediate: give --parent ROOT")
        }
        if parent != nil && intermediates {
            throw ValidationError("an intermediate signs leaves only: leave out --intermediates with --parent")
        }
    }

    func run() async throws {
        var passphrase = try ca.passphrase()
        if encrypt && passphrase == nil {
            let key = "\(ca.dir)/\(CertificateAuthority.Files.key)"
            let first = try Passphrase.prompt("New passphrase for \(key): ")
            guard try Passphrase.prompt("The same again: ") == first else {
                throw CLIError("the two passphrases differ; nothing was written")
            }
            passphrase = first
        }
        let authority: CertificateAuthority
        if let parent {
            let root = try CAOptions.open(
                dir: parent, passphraseFile: parentPassphraseFile, store: StoreOption.location(parentStore))
            authority = try root.createIntermediate(
                directory: ca.dir, name: name, keyType: key.keyType, days: days, passphrase: passphrase,
                permittedDNS: permitDNS, permittedURIDomains: permitURI, store: ca.store.location())
        } else {
            authority = try CertificateAuthority.create(
                directory: ca.dir, name: name, keyType: key.keyType, days: days, passphrase: passphrase,
                signsIntermediates: intermediates, store: ca.store.location())
        }
        let description = try CertificateDescription(authority.certificate)
        let kind =
            parent.map { "intermediate CA (signed by \($0))" } ?? (intermediates ? "root CA for intermediates" : "CA")
        Console.out("created \(kind) \"\(name)\" in \(ca.dir)")
        Console.out(
            "  certificate: \(ca.dir)/\(CertificateAuthority.Files.certificate) (valid until \(CertificateDescription.format(description.notAfter)))"
        )
        Console.out(
            "  private key: \(ca.dir)/\(CertificateAuthority.Files.key) (mode 0600\(passphrase == nil ? ", not encrypted" : ", encrypted"))"
        )
        Console.out("  store: \(authority.store.location)")
        Console.out("  SHA-256 fingerprint: \(description.sha256Fingerprint)")
    }
}
