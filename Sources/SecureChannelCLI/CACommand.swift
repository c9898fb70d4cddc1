import ArgumentParser
import Foundation
import SecureChannelPKI

#if canImport(Glibc)
    import Glibc
#endif

/// `securechannel ca …`: create and run a certificate authority.
struct CACommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ca",
        abstract: "Create a certificate authority and issue server and client certificates.",
        subcommands: [
            CAInitCommand.self, CAIssueCommand.self, CASignCommand.self, CAListCommand.self, CARevokeCommand.self,
            CACRLCommand.self, CARenewCommand.self, CATidyCommand.self, CATokenCommand.self, CAServeCommand.self,
            CAExportCommand.self, CABenchCommand.self, CABenchRenewCommand.self,
        ]
    )
}

/// Options every `ca` command that uses the CA key shares.
struct CAOptions: ParsableArguments {
    @Option(help: "The CA directory (holds ca.crt, ca.key, ca.db).", completion: .directory)
    var dir: String

    @OptionGroup var store: StoreOption

    @Option(
        help: ArgumentHelp(
            "File whose first line is the CA key's passphrase (or set SECURECHANNEL_CA_PASSPHRASE).",
            valueName: "file"), completion: .file())
    var passphraseFile: String?

    /// The passphrase from --passphrase-file, else the environment, else nil.
    func passphrase() throws -> [UInt8]? {
        try Passphrase.resolve(file: passphraseFile)
    }

    /// Opens the CA; asks for the passphrase on the terminal when the key is encrypted and none was given;
    /// prints what the user should know (a key readable by others).
    func open() throws -> CertificateAuthority {
        try Self.open(dir: dir, passphraseFile: passphraseFile, store: store.location())
    }

    /// ``open()`` for a CA other than `--dir` (the parent of `ca init --parent`).
    static func open(dir: String, passphraseFile: String?, store: CAStore.Location?) throws -> CertificateAuthority {
        var passphrase = try Passphrase.resolve(file: passphraseFile)
        if passphrase == nil, CertificateAuthority.keyIsEncrypted(directory: dir), isatty(STDIN_FILENO) != 0 {
            passphrase = try Passphrase.prompt("Passphrase for \(dir)/\(CertificateAuthority.Files.key): ")
        }
        let authority = try CertificateAuthority.open(directory: dir, passphrase: passphrase, store: store)
        for warning in authority.warnings { Console.error("warning: \(warning)") }
        return authority
    }
}

/// `--store`: where a CA keeps its records.
struct StoreOption: ParsableArguments {
    static let environmentVariable = "SECURECHANNEL_CA_STORE"

    @Option(
        help: ArgumentHelp(
            "The CA store: postgres://USER:PASSWORD@HOST:PORT/DB, or an SQLite file (default DIR/ca.db; or set SECURECHANNEL_CA_STORE).",
            valueName: "store"))
    var store: String?

    /// --store, else the environment, else nil (the directory's ca.db).
    func location() throws -> CAStore.Location? {
        try Self.location(store)
    }

    static func location(_ flag: String?) throws -> CAStore.Location? {
        if let flag { return try CAStore.Location(parsing: flag) }
        if let value = ProcessInfo.processInfo.environment[environmentVariable], !value.isEmpty {
            return try CAStore.Location(parsing: value)
        }
        return nil
    }
}

/// Reads CA passphrases.
enum Passphrase {
    static let environmentVariable = "SECURECHANNEL_CA_PASSPHRASE"

    static func resolve(file: String?) throws -> [UInt8]? {
        if let file {
            let bytes = try SecureFile.read(file)
            let firstLine = bytes.split(separator: 0x0A, maxSplits: 1, omittingEmptySubsequences: false).first ?? []
            let line = firstLine.last == 0x0D ? firstLine.dropLast() : firstLine
            guard !line.isEmpty else {
                throw PKIError(
                    .invalidArgument, "passphrase file \(file) is empty; put the passphrase on its first line")
            }
            return Array(line)
        }
        if let value = ProcessInfo.processInfo.environment[environmentVariable] {
            guard !value.isEmpty else {
                throw PKIError(
                    .invalidArgument, "\(environmentVariable) is set but empty; set the passphrase or unset it")
            }
            return Array(value.utf8)
        }
        return nil
    }

    /// Reads one line from the terminal with echo off.
    static func prompt(_ text: String) throws -> [UInt8] {
        let tty = Glibc.open("/dev/tty", O_RDWR | O_CLOEXEC)
        guard tty >= 0 else {
            throw PKIError(
                .passphraseRequired,
                "the CA key is encrypted and there is no terminal to ask on; pass --passphrase-file FILE or set \(environmentVariable)"
            )
        }
        defer { Glibc.close(tty) }
        var saved = termios()
        let canHideEcho = tcgetattr(tty, &saved) == 0
        if canHideEcho {
            var quiet = saved
            quiet.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(tty, TCSAFLUSH, &quiet)
        }
        defer {
            if canHideEcho { tcsetattr(tty, TCSAFLUSH, &saved) }
            _ = Glibc.write(tty, "\n", 1)
        }
        _ = text.withCString { Glibc.write(tty, $0, strlen($0)) }
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while Glibc.read(tty, &byte, 1) == 1, byte != 0x0A {
            if byte != 0x0D { line.append(byte) }
        }
        guard !line.isEmpty else { throw PKIError(.passphraseRequired, "no passphrase given; nothing was changed") }
        return line
    }
}

/// `securechannel ca issue server|client`.
struct CAIssueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "issue",
        abstract: "Issue a server, client or workload (SPIFFE X.509-SVID) certificate with a new key.",
        subcommands: [CAIssueServerCommand.self, CAIssueClientCommand.self, CAIssueWorkloadCommand.self]
    )
}

/// Options shared by `ca issue server` and `ca issue client`.
struct LeafOptions: ParsableArguments {
    @Option(help: "The subject's name (its CN); also the default file prefix.")
    var name: String

    @OptionGroup var settings: LeafSettings

    var days: Int { settings.days }
    var keyType: KeyType { settings.keyType }

    func issue(_ request: IssuanceRequest, ca options: CAOptions) throws { try settings.issue(request, ca: options) }
}

/// `--days`, `--key-type`, `--out` of a new leaf: shared by `ca issue server|client|workload`.
struct LeafSettings: ParsableArguments {
    @Option(parsing: .unconditional, help: "Validity in days (clamped to the CA's own expiry).")
    var days: Int = IssuanceRequest.defaultDays

    @OptionGroup var key: KeyTypeOption

    @Option(
        help: ArgumentHelp("Write PREFIX.crt and PREFIX.key (default: DIR/NAME).", valueName: "prefix"),
        completion: .file())
    var out: String?

    var keyType: KeyType { key.keyType }

    func validate() throws { try Check.days(days) }

    func issue(_ request: IssuanceRequest, ca options: CAOptions) throws {
        try request.validate()
        let authority = try options.open()
        let issued = try authority.issue(request, outPrefix: out)
        let notAfter = CertificateDescription.format(issued.certificate.notValidAfter)
        Console.out(
            "issued \(request.kind.rawValue) certificate for \(request.name) (serial \(issued.serial), valid until \(notAfter))"
        )
        Console.out("  certificate: \(issued.certificatePath)")
        Console.out("  private key: \(issued.keyPath) (mode 0600)")
        for warning in issued.warnings { Console.error("warning: \(warning)") }
    }
}

/// `securechannel ca issue server`.
struct CAIssueServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server",
        abstract: "Issue a server certificate (serverAuth, with the names clients will verify).",
        discussion: """
            At least one --dns or --ip is required: clients check the server's name against these.

            EXAMPLE:
              securechannel ca issue server --dir pki --name Jill --dns localhost \\
                  --ip 127.0.0.1
            """
    )

    @OptionGroup var ca: CAOptions
    @OptionGroup var leaf: LeafOptions

    @Option(help: ArgumentHelp("A DNS name for the subjectAltName (repeatable).", valueName: "host"))
    var dns: [String] = []

    @Option(help: ArgumentHelp("An IP address for the subjectAltName (repeatable).", valueName: "addr"))
    var ip: [String] = []

    func run() async throws {
        let request = IssuanceRequest.server(
            name: leaf.name, dnsNames: dns, ipAddresses: ip, days: leaf.days, keyType: leaf.keyType)
        try leaf.issue(request, ca: ca)
    }
}

/// `securechannel ca issue client`.
struct CAIssueClientCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "client",
        abstract: "Issue a client certificate (clientAuth).",
        discussion: """
            EXAMPLE:
              securechannel ca issue client --dir pki --name Chris \\
                  --email chris@example.com
            """
    )

    @OptionGroup var ca: CAOptions
    @OptionGroup var leaf: LeafOptions

    @Option(help: ArgumentHelp("An e-mail address for the subjectAltName (repeatable).", valueName: "addr"))
    var email: [String] = []

    @Option(help: ArgumentHelp("A URI for the subjectAltName, e.g. a SPIFFE ID (repeatable).", valueName: "uri"))
    var uri: [String] = []

    func run() async throws {
        let request = IssuanceRequest.client(
            name: leaf.name, emails: email, uris: uri, days: leaf.days, keyType: leaf.keyType)
        try leaf.issue(request, ca: ca)
    }
}

/// `securechannel ca issue workload`.
struct CAIssueWorkloadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workload",
        abstract: "Issue an X.509-SVID: a SPIFFE ID as the only URI name, usable as client and as server.",
        discussion: """
            As the SPIFFE X509-SVID specification defines it: exactly one URI SAN (the SPIFFE ID, checked: scheme, \
            trust domain, path segments), CA:FALSE, keyUsage digitalSignature, extendedKeyUsage serverAuth and \
            clientAuth. --name (the CN and the file prefix) defaults to the ID's last path segment.

            EXAMPLES:
              securechannel ca issue workload --dir pki \\
                  --spiffe-id spiffe://example.org/ns/prod/web
              securechannel ca issue workload --dir pki \\
                  --spiffe-id spiffe://example.org/db --dns db.example --days 1
            """
    )

    @OptionGroup var ca: CAOptions

    @Option(help: ArgumentHelp("The workload's SPIFFE ID: spiffe://TRUST-DOMAIN/PATH.", valueName: "id"))
    var spiffeID: String

    @Option(help: "The CN and default file prefix (default: the ID's last path segment).")
    var name: String?

    @Option(help: ArgumentHelp("A DNS name for the subjectAltName (repeatable).", valueName: "host"))
    var dns: [String] = []

    @Option(help: ArgumentHelp("An IP address for the subjectAltName (repeatable).", valueName: "addr"))
    var ip: [String] = []

    @OptionGroup var leaf: LeafSettings

    func validate() throws {
        do {
            try IssuanceRequest.validateSPIFFEID(spiffeID)
        } catch let error as PKIError {
            throw ValidationError("--spiffe-id \(error.message)")
        }
    }

    func run() async throws {
        try leaf.issue(
            IssuanceRequest.workload(
                spiffeID: spiffeID, name: name, dnsNames: dns, ipAddresses: ip, days: leaf.days,
                keyType: leaf.keyType),
            ca: ca)
    }
}

/// `securechannel ca list`.
struct CAListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List every certificate this CA issued, with its status and files.",
        discussion: """
            FILE is the prefix of PREFIX.crt and PREFIX.key, relative to DIR when inside it, or (store) for a \
            certificate issued over the network (ca serve), which only the store holds: 'ca export' prints it. DAYS \
            LEFT counts whole days rounded up (a fresh 90-day certificate shows 90).

            EXAMPLES:
              securechannel ca list --dir pki
              securechannel ca list --dir pki --status revoked --json
              securechannel ca list --dir pki --expiring-within 14
            """
    )

    @Option(help: "The CA directory.", completion: .directory)
    var dir: String

    @OptionGroup var store: StoreOption

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    @Option(help: "Only certificates with this status: valid, expired, revoked or not-yet-valid.")
    var status: CertificateStatus?

    @Option(
        help: ArgumentHelp("Only valid certificates that expire within this many days.", valueName: "days"))
    var expiringWithin: Int?

    func validate() throws {
        if let expiringWithin, expiringWithin < 0 {
            throw ValidationError("--expiring-within must be 0 days or more")
        }
    }

    func run() async throws {
        guard SecureFile.exists("\(dir)/\(CertificateAuthority.Files.certificate)") else {
            throw PKIError(.fileNotFound, "no CA in \(dir); create one with 'securechannel ca init --dir \(dir)'")
        }
        let store = try CertificateAuthority.openStore(directory: dir, store: store.location())
        let now = Date()
        let entries = try store.certificates(CAStore.Filter(status: expiringWithin == nil ? status : .valid, now: now))
        let rows = entries.map { InventoryRow(entry: $0, now: now) }.filter { row in
            if let status, row.status != status { return false }
            if let expiringWithin, row.status != .valid || row.daysLeft > expiringWithin { return false }
            return true
        }
        if json {
            Console.out(try JSONText.encode(rows))
            return
        }
        guard !rows.isEmpty else {
            let total = try store.count()
            if total == 0 {
                Console.out(
                    "no certificates issued yet; issue one with 'securechannel ca issue server|client --dir \(dir) ...'"
                )
            } else {
                Console.out("no certificate matches (\(total) in the inventory)")
            }
            return
        }
        var table = [["SERIAL", "KIND", "SUBJECT", "NAMES", "FILE", "NOT AFTER", "STATUS", "DAYS LEFT"]]
        for row in rows {
            table.append([
                row.serial, row.kind.rawValue, row.subject,
                row.subjectAlternativeNames.isEmpty ? "-" : row.subjectAlternativeNames.joined(separator: ","),
                row.file.isEmpty ? "(store)" : row.file, CertificateDescription.format(row.notAfter),
                row.revocationReason.map { "revoked (\($0))" } ?? row.status.rawValue, String(row.daysLeft),
            ])
        }
        Console.out(TextTable.render(table))
    }
}

/// `securechannel ca export`.
struct CAExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Print a certificate this CA issued (PEM), by its serial: from the store or its file.",
        discussion: """
            Certificates issued over the network (ca serve: enrollments and renewals) are kept in the store, not \
            in files; this prints them.

            EXAMPLES:
              securechannel ca export --dir pki --serial 5A0C…
              securechannel ca export --dir pki --serial 5A0C… | openssl x509 -noout -text
            """
    )

    @Option(help: "The CA directory.", completion: .directory)
    var dir: String

    @OptionGroup var store: StoreOption

    @Option(help: "The certificate's serial number (hex, as 'ca list' shows it).")
    var serial: String

    func run() async throws {
        guard SecureFile.exists("\(dir)/\(CertificateAuthority.Files.certificate)") else {
            throw PKIError(.fileNotFound, "no CA in \(dir); create one with 'securechannel ca init --dir \(dir)'")
        }
        let store = try CertificateAuthority.openStore(directory: dir, store: store.location())
        let pem = try store.certificatePEM(serial: serial, directory: dir)
        Console.out(pem.hasSuffix("\n") ? String(pem.dropLast()) : pem)
    }
}

extension CertificateStatus: ExpressibleByArgument, CaseIterable {
    public static var allCases: [CertificateStatus] { [.valid, .expired, .revoked, .notYetValid] }
}

/// One row of `ca list`, also its JSON shape.
struct InventoryRow: Encodable {
    var serial: String
    var kind: CertificateKind
    var name: String
    var subject: String
    var subjectAlternativeNames: [String]
    var keyType: String
    var notBefore: Date
    var notAfter: Date
    var status: CertificateStatus
    var daysLeft: Int
    /// The file prefix as stored (relative to the CA directory when inside it).
    var file: String
    var certificatePath: String
    var keyPath: String?
    var revokedAt: Date?
    var revocationReason: String?
    var publicKeySHA256: String?
    /// The SPIFFE ID of an X.509-SVID (its one URI SAN).
    var spiffeID: String?

    init(entry: Inventory.Entry, now: Date) {
        serial = entry.serial
        kind = entry.kind
        name = entry.name
        subject = entry.subject
        subjectAlternativeNames = entry.subjectAlternativeNames
        keyType = entry.keyType
        notBefore = entry.notBefore
        notAfter = entry.notAfter
        status = entry.status(at: now)
        daysLeft = DaysLeft.count(until: entry.notAfter, now: now)
        file = entry.prefix
        certificatePath = entry.certificatePath
        keyPath = entry.keyPath.isEmpty ? nil : entry.keyPath
        revokedAt = entry.revocation?.date
        revocationReason = entry.revocation?.reason
        publicKeySHA256 = entry.publicKeySHA256
        let uris = entry.subjectAlternativeNames.filter { $0.hasPrefix("URI:") }.map { String($0.dropFirst(4)) }
        spiffeID = uris.count == 1 && uris[0].hasPrefix("spiffe://") ? uris[0] : nil
    }
}

/// Aligned columns for terminal output.
enum TextTable {
    static func render(_ rows: [[String]]) -> String {
        guard let width = rows.first?.count else { return "" }
        let widths = (0..<width).map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { index, cell in
                index == width - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}

/// JSON output with stable key order and ISO 8601 dates.
enum JSONText {
    static func encode(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}
