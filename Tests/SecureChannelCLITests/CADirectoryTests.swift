import Foundation
import SecureChannelPKI
import TestSupport
import Testing
import X509

/// Issue 14, the CA items: a CA directory is self-contained, a revoked key is never certified again, the inventory
/// shows what a user needs, and an encrypted CA key is asked for on a terminal.
@Suite("CLI: a CA directory that never touches the wrong files", .timeLimit(.minutes(3)))
struct CADirectoryTests {
    static func bytes(_ path: String) throws -> [UInt8] { try SecureFile.read(path) }

    @Test("a copied CA directory renews inside the copy; the original's files and inventory are untouched")
    func copiedDirectory() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let pki = dir.file("pki")
        let moved = dir.file("moved")
        try await CLI.barryJillChris(in: pki)
        let entries = try CertificateAuthority.openStore(directory: pki).certificates()
        #expect(entries.map(\.certificatePath).contains("Jill.crt"), "paths are stored relative to the directory")
        #expect(!entries.contains { $0.certificatePath.contains(pki) }, "no absolute path into the directory")
        _ = try await Tools.run("/bin/cp", ["-a", pki, moved])
        let before = try [
            Self.bytes("\(pki)/Jill.crt"), Self.bytes("\(pki)/Jill.key"), Self.bytes("\(pki)/ca.db"),
        ]

        let renewed = try await CLI.ok(["ca", "renew", "--dir", moved, "--name", "Jill"])
        #expect(renewed.stdout.contains("certificate: \(moved)/Jill.crt"), "\(renewed.stdout)")
        let after = try [Self.bytes("\(pki)/Jill.crt"), Self.bytes("\(pki)/Jill.key"), Self.bytes("\(pki)/ca.db")]
        #expect(after == before, "the original directory is untouched")
        #expect(try Self.bytes("\(moved)/Jill.crt") != before[0], "the copy holds the new certificate")
        let serial = try #require(renewed.stdout.split(separator: " ").drop { $0 != "serial" }.dropFirst().first)
        let movedSerials = try CertificateAuthority.openStore(directory: moved).certificates().map(\.serial)
        #expect(movedSerials.contains(serial.trimmingCharacters(in: .punctuationCharacters)))
    }

    /// Turns a CA directory into one made before the store: its records written out as `index.json` (format 2),
    /// `ca.db` removed.
    static func writeLegacyInventory(_ directory: String) throws {
        let store = try CertificateAuthority.openStore(directory: directory)
        let inventory = Inventory(
            certificates: try store.certificates(), nextCRLNumber: try store.nextCRLNumber(),
            revokedKeys: try store.revokedKeys())
        store.close()
        try inventory.save(directory: directory)
        try FileManager.default.removeItem(atPath: "\(directory)/\(CAStore.fileName)")
    }

    /// Rewrites `DIR/index.json` as a version 1 inventory: absolute paths under `root`, no key hashes.
    static func writeVersion1(_ directory: String, pathsUnder root: String) throws {
        try writeLegacyInventory(directory)
        let path = "\(directory)/index.json"
        var object = try #require(
            try JSONSerialization.jsonObject(with: Data(Self.bytes(path))) as? [String: Any])
        object["version"] = 1
        object["revokedKeys"] = nil
        var certificates = try #require(object["certificates"] as? [[String: Any]])
        for index in certificates.indices {
            for key in ["certificatePath", "keyPath"] {
                if let relative = certificates[index][key] as? String, !relative.isEmpty {
                    certificates[index][key] = "\(root)/\(relative)"
                }
            }
            certificates[index]["publicKeySHA256"] = nil
        }
        object["certificates"] = certificates
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted])
        try SecureFile.write(Array(data), to: path, mode: 0o644)
    }

    @Test(
        "an old inventory with absolute paths is migrated; one whose paths lead out of the directory is refused with one line, nothing written"
    )
    func migration() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let pki = dir.file("pki")
        try await CLI.barryJillChris(in: pki)
        try await CLI.ok(["ca", "revoke", "--dir", pki, "--name", "Chris", "--reason", "keyCompromise"])
        let absolute = URL(fileURLWithPath: pki).standardizedFileURL.path
        try Self.writeVersion1(pki, pathsUnder: absolute)
        // A copy of the old-format directory: its inventory points into the original.
        let copy = dir.file("copy")
        _ = try await Tools.run("/bin/cp", ["-a", pki, copy])
        let original = try Self.bytes("\(pki)/Jill.crt")
        let refused = try await CLI.run(["ca", "renew", "--dir", copy, "--name", "Jill"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("outside") && refused.stderr.contains("--out"), "\(refused.stderr)")
        #expect(refused.stderr.split(separator: "\n").count == 1)
        #expect(try Self.bytes("\(pki)/Jill.crt") == original, "nothing written into the original")
        // With --out inside the copy it works.
        try await CLI.ok(["ca", "renew", "--dir", copy, "--name", "Jill", "--out", "\(copy)/Jill-renewed"])
        #expect(try Self.bytes("\(pki)/Jill.crt") == original)

        // In place, the old inventory is migrated: relative paths, and the revoked key is known from issued/.
        try await CLI.ok(["ca", "renew", "--dir", pki, "--name", "Jill"])
        #expect(!SecureFile.exists("\(pki)/index.json") && SecureFile.exists("\(pki)/index.json.migrated"))
        let store = try CertificateAuthority.openStore(directory: pki)
        #expect(try !store.certificates().contains { $0.certificatePath.contains(absolute) })
        #expect(try store.revokedKeys().map(\.reason) == ["keyCompromise"])
        try Self.request(for: "\(pki)/Chris.key", name: "Chris", out: dir.file("chris.csr"))
        let sign = try await CLI.run([
            "ca", "sign", "--dir", pki, "--csr", dir.file("chris.csr"), "--kind", "client", "--out", dir.file("c"),
        ])
        #expect(sign.status == 1 && sign.stderr.contains("never certified again"), "\(sign.stderr)")
    }

    /// A CSR for the key in `keyFile`, as `cert request` or `openssl req -key` makes it.
    static func request(for keyFile: String, name: String, out: String) throws {
        let key = try PrivateKeyIO.parse(try SecureFile.read(keyFile), source: keyFile)
        let csr = try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { CommonName(name) }, privateKey: key,
            attributes: CertificateSigningRequest.Attributes(), signatureAlgorithm: .ecdsaWithSHA256)
        try SecureFile.write(try CertificateRequest.pem(csr), to: out, mode: 0o644)
    }

    @Test(
        "a revoked key is never certified again: renew --reuse-key and ca sign of its CSR are refused; a new key is fine"
    )
    func revokedKey() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let pki = dir.file("pki")
        try await CLI.barryJillChris(in: pki)
        try Self.request(for: "\(pki)/Chris.key", name: "Chris", out: dir.file("chris.csr"))
        try await CLI.ok(["ca", "revoke", "--dir", pki, "--name", "Chris", "--reason", "keyCompromise"])
        let index = try Self.bytes("\(pki)/ca.db")
        let certificate = try Self.bytes("\(pki)/Chris.crt")

        let reuse = try await CLI.run(["ca", "renew", "--dir", pki, "--name", "Chris", "--reuse-key"])
        #expect(reuse.status == 1, "\(reuse.stdout)")
        #expect(reuse.stderr.contains("revoked (keyCompromise)") && !reuse.stdout.contains("same key"))
        let sign = try await CLI.run([
            "ca", "sign", "--dir", pki, "--csr", dir.file("chris.csr"), "--kind", "client", "--out", dir.file("again"),
        ])
        #expect(sign.status == 1)
        #expect(sign.stderr.contains("never certified again"), "\(sign.stderr)")
        #expect(!SecureFile.exists(dir.file("again.crt")))
        #expect(try Self.bytes("\(pki)/ca.db") == index && Self.bytes("\(pki)/Chris.crt") == certificate)

        let fresh = try await CLI.ok(["ca", "renew", "--dir", pki, "--name", "Chris"])
        #expect(fresh.stdout.contains("(new key)"))
        #expect(try Self.bytes("\(pki)/Chris.crt") != certificate)
    }

    @Test(
        "ca list shows the file of each certificate, filters by --status and --expiring-within, and its JSON carries the revocation; CRL reasons are names; days left are counted one way"
    )
    func inventory() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let pki = dir.file("pki")
        try await CLI.barryJillChris(in: pki)
        try await CLI.ok(["ca", "issue", "client", "--dir", pki, "--name", "Chris", "--out", "\(pki)/chris-laptop"])
        try await CLI.ok([
            "ca", "issue", "client", "--dir", pki, "--name", "Chris", "--out", "\(pki)/chris-phone", "--days", "1",
        ])
        // One of three CN=Chris by its file, then the rest by name.
        let one = try await CLI.ok(["ca", "revoke", "--dir", pki, "--file", "chris-laptop"])
        #expect(one.stdout.split(separator: "\n").filter { $0.hasPrefix("revoked") }.count == 1, "\(one.stdout)")
        try await CLI.ok(["ca", "revoke", "--dir", pki, "--name", "Chris", "--reason", "keyCompromise"])
        try await CLI.ok(["ca", "issue", "client", "--dir", pki, "--name", "Dana"])

        let table = try await CLI.ok(["ca", "list", "--dir", pki]).stdout
        let header = try #require(table.split(separator: "\n").first)
        #expect(header.contains("FILE"))
        for file in ["chris-laptop", "chris-phone", " Chris "] { #expect(table.contains(file), "\(table)") }
        let jill = try #require(table.split(separator: "\n").first { $0.contains("CN=Jill") })
        #expect(jill.hasSuffix(" 90"), "a fresh 90-day certificate shows 90 days left: \(jill)")

        let revoked = try await CLI.ok(["ca", "list", "--dir", pki, "--status", "revoked", "--json"])
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(revoked.stdout.utf8)) as? [[String: Any]])
        #expect(rows.count == 3)
        #expect(rows.filter { $0["revocationReason"] as? String == "keyCompromise" }.count == 2)
        #expect(rows.allSatisfy { $0["revokedAt"] != nil && $0["revocationReason"] != nil })
        #expect(Set(rows.compactMap { $0["file"] as? String }) == ["Chris", "chris-laptop", "chris-phone"])
        let valid = try await CLI.ok(["ca", "list", "--dir", pki, "--status", "valid"]).stdout
        #expect(valid.contains("CN=Dana") && !valid.contains("CN=Chris"))
        let soon = try await CLI.ok(["ca", "list", "--dir", pki, "--expiring-within", "30"]).stdout
        #expect(soon.contains("no certificate matches"), "the 1-day one is revoked, the rest have 90 days: \(soon)")
        try await CLI.ok(["ca", "issue", "client", "--dir", pki, "--name", "Eve", "--days", "1"])
        let eve = try await CLI.ok(["ca", "list", "--dir", pki, "--expiring-within", "30"]).stdout
        #expect(eve.contains("CN=Eve") && !eve.contains("CN=Dana"))
        let bad = try await CLI.run(["ca", "list", "--dir", pki, "--status", "gone"])
        #expect(bad.status == 64)

        let inspect = try await CLI.ok(["cert", "inspect", "--json", "\(pki)/crl.pem"]).stdout
        #expect(inspect.contains("\"reason\" : \"keyCompromise\""), "\(inspect)")
        #expect(!inspect.contains("\"reason\" : 1"))
        let day = try await CLI.ok(["cert", "inspect", "\(pki)/Eve.crt"]).stdout
        #expect(day.contains("(1 day left)"), "\(day)")
        let ninety = try await CLI.ok(["cert", "inspect", "\(pki)/Dana.crt"]).stdout
        #expect(ninety.contains("(90 days left)"))
    }

    @Test(
        "ca tidy removes long-expired certificates from the inventory and, when revoked, from the CRL; keys stay denied"
    )
    func tidy() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let pki = dir.file("pki")
        try await CLI.barryJillChris(in: pki)
        let barry = try CertificateAuthority.open(directory: pki)
        let day: TimeInterval = 86_400
        let old = try barry.issue(.client(name: "Old", days: 1), now: Date() - 41 * day)
        let recent = try barry.issue(.client(name: "Recent", days: 1), now: Date() - 11 * day)
        try await CLI.ok(["ca", "revoke", "--dir", pki, "--name", "Old", "--reason", "keyCompromise"])
        let crl = try await CLI.ok(["cert", "inspect", "\(pki)/crl.pem"]).stdout
        #expect(crl.contains(old.serial))

        let first = try await CLI.ok(["ca", "tidy", "--dir", pki])
        #expect(first.stdout.contains("removed 1 certificate(s) expired more than 30 days ago"), "\(first.stdout)")
        #expect(first.stdout.contains(old.serial) && first.stdout.contains("dropped from the CRL"))
        let list = try await CLI.ok(["ca", "list", "--dir", pki]).stdout
        #expect(!list.contains(old.serial) && list.contains(recent.serial) && list.contains("CN=Jill"))
        let after = try await CLI.ok(["cert", "inspect", "\(pki)/crl.pem"]).stdout
        #expect(!after.contains(old.serial), "the expired revoked certificate left the CRL")
        #expect(!SecureFile.exists("\(pki)/issued/\(old.serial).crt"))
        // Its key is still never certified again.
        try Self.request(for: old.keyPath, name: "Old", out: dir.file("old.csr"))
        let again = try await CLI.run([
            "ca", "sign", "--dir", pki, "--csr", dir.file("old.csr"), "--kind", "client", "--out", dir.file("o"),
        ])
        #expect(again.status == 1 && again.stderr.contains("never certified again"))

        let nothing = try await CLI.ok(["ca", "tidy", "--dir", pki])
        #expect(nothing.stdout.contains("nothing to remove"))
        let shorter = try await CLI.ok(["ca", "tidy", "--dir", pki, "--older-than", "5"])
        #expect(shorter.stdout.contains(recent.serial) && !shorter.stdout.contains("dropped from the CRL"))
        #expect(try await CLI.run(["ca", "tidy", "--dir", pki, "--older-than", "-1"]).status == 64)
    }

    /// Runs `arguments` on a pseudo-terminal and types `typed` at the first prompt ending in ": ".
    static func onTerminal(_ arguments: [String], typing typed: String) async throws -> ProcessResult {
        let python = try Tools.require("python3")
        let script = """
            import os, pty, sys, select
            pid, fd = pty.fork()
            if pid == 0:
                os.execv(sys.argv[1], sys.argv[1:])
            out = b''
            answers = os.environ['TYPED'].split('\\x1f')
            typed = 0
            while True:
                ready, _, _ = select.select([fd], [], [], 30)
                if not ready:
                    break
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
                if out.rstrip().endswith(b':') and typed < len(answers):
                    os.write(fd, answers[typed].encode() + b'\\n')
                    typed += 1
                    out += b' #'  # echo is off: mark the prompt answered, so only a new one is answered
            _, status = os.waitpid(pid, 0)
            sys.stdout.write(out.decode(errors='replace'))
            sys.exit(os.waitstatus_to_exitcode(status))
            """
        var environment = ProcessInfo.processInfo.environment
        environment["TYPED"] = typed
        environment["SECURECHANNEL_CA_PASSPHRASE"] = nil
        return try await Tools.run(
            python, ["-c", script, try Tools.securechannel()] + arguments, environment: environment)
    }

    @Test("ca init --encrypt asks twice for the new passphrase; a mismatch writes nothing")
    func newPassphrase() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let pki = dir.file("pki")
        let made = try await Self.onTerminal(
            ["ca", "init", "--dir", pki, "--encrypt"], typing: "twice typed\u{1F}twice typed")
        #expect(made.status == 0, "\(made.stdout)")
        #expect(made.stdout.contains("encrypted") && !made.stdout.contains("twice typed"))
        let key = try String(contentsOfFile: "\(pki)/ca.key", encoding: .utf8)
        #expect(key.contains("ENCRYPTED PRIVATE KEY"))
        try SecureFile.write("twice typed\n", to: dir.file("pass"), mode: 0o600)
        try await CLI.ok([
            "ca", "issue", "client", "--dir", pki, "--name", "Chris", "--passphrase-file", dir.file("pass"),
        ])
        let differ = try await Self.onTerminal(
            ["ca", "init", "--dir", dir.file("other"), "--encrypt"], typing: "one\u{1F}two")
        #expect(differ.status == 1 && differ.stdout.contains("differ"))
        #expect(!SecureFile.exists(dir.file("other/ca.key")))
    }

    @Test("an encrypted CA key on a terminal: the passphrase is asked for without echo")
    func passphrasePrompt() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let pki = dir.file("pki")
        try SecureFile.write("tty-typed secret\n", to: dir.file("pass"), mode: 0o600)
        try await CLI.ok(["ca", "init", "--dir", pki, "--passphrase-file", dir.file("pass")])
        let issue = try await Self.onTerminal(
            ["ca", "issue", "client", "--dir", pki, "--name", "Chris"], typing: "tty-typed secret")
        #expect(issue.status == 0, "\(issue.stdout)")
        #expect(issue.stdout.contains("Passphrase for \(pki)/ca.key:"))
        #expect(issue.stdout.contains("issued client certificate for Chris"))
        #expect(!issue.stdout.contains("tty-typed secret"), "the passphrase is not echoed")
        let wrong = try await Self.onTerminal(
            ["ca", "issue", "client", "--dir", pki, "--name", "Dana"], typing: "not it")
        #expect(wrong.status == 1)
        #expect(wrong.stdout.lowercased().contains("passphrase"))
        #expect(!SecureFile.exists("\(pki)/Dana.crt"))
    }
}
