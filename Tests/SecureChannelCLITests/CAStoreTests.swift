import Foundation
import SecureChannelPKI
import TestSupport
import Testing

/// Issue 16, the store: `DIR/ca.db` (SQLite) by default, an `index.json` migrated into it, concurrent issuance,
/// and a PostgreSQL store shared by CA processes that issue and revoke at once, one of them killed.
@Suite("CLI: the CA store (SQLite and PostgreSQL)", .serialized, .timeLimit(.minutes(4)))
struct CAStoreTests {
    static func bytes(_ path: String) throws -> [UInt8] { try SecureFile.read(path) }

    /// Every file under `directory` (not the store and its journal) with its bytes.
    static func files(_ directory: String) throws -> [String: [UInt8]] {
        var result: [String: [UInt8]] = [:]
        for path in try FileManager.default.subpathsOfDirectory(atPath: directory)
        where path.hasSuffix(".crt") || path.hasSuffix(".key") || path.hasSuffix(".pem") {
            result[path] = try bytes("\(directory)/\(path)")
        }
        return result
    }

    /// `ca list --json`, as objects.
    static func list(_ directory: String, _ extra: [String] = []) async throws -> [[String: String]] {
        let output = try await CLI.ok(["ca", "list", "--dir", directory, "--json"] + extra).stdout
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [[String: Any]])
        return rows.map { row in row.mapValues { "\($0)" } }
    }

    static func number(_ crl: CertificateRevocationList) -> Int { Int(crl.number ?? "", radix: 16) ?? -1 }

    static func crl(_ path: String) throws -> CertificateRevocationList {
        try CertificateRevocationList.load(try bytes(path), source: path)
    }

    @Test(
        "an index.json is migrated into ca.db on first use: certificates byte-identical, the same inventory, index.json.migrated kept, every command working"
    )
    func migration() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let pki = dir.file("pki")
        try await CLI.barryJillChris(in: pki)
        try await CLI.ok(["ca", "issue", "client", "--dir", pki, "--name", "Dana"])
        try await CLI.ok(["ca", "revoke", "--dir", pki, "--name", "Chris", "--reason", "keyCompromise"])
        try CADirectoryTests.writeLegacyInventory(pki)
        let index = try Self.bytes("\(pki)/index.json")
        let before = try Self.files(pki)
        let crlNumber = try Self.crl("\(pki)/crl.pem")
        #expect(!SecureFile.exists("\(pki)/ca.db"))

        // The first command migrates; the inventory is the same, nothing else changed.
        let listed = try await Self.list(pki)
        #expect(listed.map { $0["name"] } == ["Jill", "Chris", "Dana"])
        #expect(listed.map { $0["status"] } == ["valid", "revoked", "valid"])
        #expect(listed[1]["revocationReason"] == "keyCompromise")
        #expect(SecureFile.exists("\(pki)/ca.db") && !SecureFile.exists("\(pki)/index.json"))
        #expect(try Self.bytes("\(pki)/index.json.migrated") == index, "the old inventory is kept as it was")
        #expect(try Self.files(pki) == before, "certificates, keys and CRL byte-identical")

        // Every command works on the migrated store.
        try await CLI.ok(["ca", "issue", "server", "--dir", pki, "--name", "Eve", "--dns", "eve.example"])
        try await CLI.ok(["ca", "revoke", "--dir", pki, "--name", "Dana"])
        let crl = try Self.crl("\(pki)/crl.pem")
        #expect(Self.number(crl) > Self.number(crlNumber), "CRL numbers carry on")
        #expect(crl.entries.count == 2)
        try await CLI.ok(["ca", "renew", "--dir", pki, "--name", "Jill"])
        try await CLI.ok(["ca", "crl", "--dir", pki])
        try CADirectoryTests.request(for: "\(pki)/Chris.key", name: "Chris", out: dir.file("chris.csr"))
        let reuse = try await CLI.run([
            "ca", "sign", "--dir", pki, "--csr", dir.file("chris.csr"), "--kind", "client", "--out", dir.file("c"),
        ])
        #expect(reuse.status == 1 && reuse.stderr.contains("never certified again"), "the revoked key came along")
        let tidy = try await CLI.ok(["ca", "tidy", "--dir", pki])
        #expect(tidy.stdout.contains("nothing"), "\(tidy.stdout)")
        let after = try await Self.list(pki)
        #expect(after.map { $0["name"] } == ["Jill", "Chris", "Dana", "Eve", "Jill"])
        #expect(after.map { $0["status"] } == ["valid", "revoked", "revoked", "valid", "valid"])
    }

    @Test("ca bench (Benchmarks/ca-scale.sh) runs at a small size and reports every figure")
    func scaleBenchmark() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let result = try await CLI.ok([
            "ca", "bench", "--dir", dir.file("ca"), "--size", "300", "--revoked-percent", "10", "--issues", "5",
        ])
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(report["size"] as? Int == 300 && report["revoked"] as? Int == 30, "\(report)")
        #expect(report["crlEntries"] as? Int == 30, "the CRL lists every revoked record")
        #expect(report["issued"] as? Int == 5)
        for key in ["issuesPerSecond", "crlSeconds", "listRevokedSeconds", "fillSeconds"] {
            #expect((report[key] as? Double ?? -1) > 0, "\(key) measured")
        }
        // The store holds the filled records and the real issuances.
        #expect(try await Self.list(dir.file("ca")).count == 305)
        let bad = try await CLI.run(["ca", "bench", "--dir", dir.file("other"), "--size", "-1"])
        #expect(bad.status == 64 && bad.stderr.split(separator: "\n").count == 1, "\(bad.stderr)")
    }

    @Test("a damaged ca.db is one line that says to restore it; nothing is written")
    func damagedStore() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let pki = dir.file("pki")
        try await CLI.ok(["ca", "init", "--dir", pki, "--name", "Barry"])
        try SecureFile.write(String(repeating: "not sqlite ", count: 100), to: "\(pki)/ca.db", mode: 0o600)
        for arguments in [["ca", "list", "--dir", pki], ["ca", "issue", "client", "--dir", pki, "--name", "Chris"]] {
            let result = try await CLI.run(arguments)
            #expect(result.status == 1, "\(arguments): \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1)
            #expect(result.stderr.contains("ca.db") && result.stderr.contains("restore it from a backup"))
        }
        #expect(!SecureFile.exists("\(pki)/Chris.crt") && !SecureFile.exists("\(pki)/Chris.key"))
    }

    @Test(
        "a version-2 store gains the certificate column on first use; ca export reads a file-issued certificate",
        .enabled(if: Tools.enabled("python3"), "needs python3 (its sqlite3 module makes the older store)"))
    func schemaThree() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let pki = dir.file("pki")
        try await CLI.ok(["ca", "init", "--dir", pki, "--name", "Barry"])
        let issued = try await CLI.ok(["ca", "issue", "client", "--dir", pki, "--name", "Chris"]).stdout
        let serial = try #require(
            issued.range(of: "(serial ").map { String(issued[$0.upperBound...].prefix { $0 != "," }) })
        // What version 2 wrote: no certificate_pem column.
        let sql = """
            import sqlite3, sys
            db = sqlite3.connect(sys.argv[1])
            if sys.argv[2] == "downgrade":
                db.execute("ALTER TABLE sc_certificates DROP COLUMN certificate_pem")
                db.execute("UPDATE sc_meta SET value = '2' WHERE key = 'schema'")
                db.commit()
            columns = [row[1] for row in db.execute("PRAGMA table_info(sc_certificates)")]
            version = db.execute("SELECT value FROM sc_meta WHERE key = 'schema'").fetchone()[0]
            print(version, "certificate_pem" in columns)
            """
        let python = try Tools.require("python3")
        let before = try await Tools.run(python, ["-c", sql, "\(pki)/ca.db", "downgrade"], timeout: 30)
        #expect(before.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "2 False", "\(before.stderr)")
        try await CLI.ok(["ca", "list", "--dir", pki])
        let after = try await Tools.run(python, ["-c", sql, "\(pki)/ca.db", "check"], timeout: 30)
        #expect(after.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "3 True", "\(after.stderr)")
        let exported = try await CLI.ok(["ca", "export", "--dir", pki, "--serial", serial]).stdout
        #expect(
            try CertificateIO.parseCertificates(Array(exported.utf8), source: "export")
                == (try CertificateIO.parseCertificates(try SecureFile.read("\(pki)/Chris.crt"), source: "Chris.crt")))
    }

    @Test("20 concurrent ca issue processes on SQLite: every certificate recorded, serials unique")
    func concurrentSQLite() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let pki = dir.file("pki")
        try await CLI.ok(["ca", "init", "--dir", pki, "--name", "Barry"])
        try await Self.issueConcurrently(directories: [pki], count: 20)
    }

    /// Runs `count` `ca issue` processes at once, spread over `directories` (copies of one CA on one store), and
    /// checks that every one succeeded and was recorded once, with its own serial.
    static func issueConcurrently(directories: [String], count: Int, environment: [String: String]? = nil)
        async throws
    {
        let results = try await withThrowingTaskGroup(of: ProcessResult.self) { group in
            for index in 0..<count {
                let directory = directories[index % directories.count]
                group.addTask {
                    try await CLI.run(
                        ["ca", "issue", "client", "--dir", directory, "--name", "c\(index)"], environment: environment,
                        timeout: 120)
                }
            }
            var results: [ProcessResult] = []
            for try await result in group { results.append(result) }
            return results
        }
        for result in results { #expect(result.status == 0, "\(result.stderr)") }
        let printed = results.compactMap { result in
            result.stdout.split(separator: " ").drop { $0 != "(serial" }.dropFirst().first.map(String.init)
        }
        #expect(printed.count == count && Set(printed).count == count, "each process printed its own serial")
        for directory in directories {
            let rows = try await Self.list(directory, [], environment: environment)
            #expect(rows.count == count, "every certificate recorded (seen from \(directory))")
            #expect(
                Set(rows.compactMap { $0["serial"] })
                    == Set(printed.map { $0.trimmingCharacters(in: .punctuationCharacters) }))
        }
    }

    static func list(_ directory: String, _ extra: [String], environment: [String: String]?) async throws
        -> [[String: String]]
    {
        let result = try await CLI.run(["ca", "list", "--dir", directory, "--json"] + extra, environment: environment)
        #expect(result.status == 0, "\(result.stderr)")
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]])
        return rows.map { row in row.mapValues { "\($0)" } }
    }

    @Test(
        "PostgreSQL: two copies of one CA issue concurrently on one store (20 processes), each sees every certificate",
        .enabled(if: TestPostgres.enabled, TestPostgres.skipReason))
    func concurrentPostgres() async throws {
        let database = try await TestPostgres.createDatabase()
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let first = dir.file("machine-a")
        let second = dir.file("machine-b")
        let made = try await CLI.run(["ca", "init", "--dir", first, "--name", "Barry", "--store", database.url])
        #expect(made.status == 0, "\(made.stderr)")
        #expect(made.stdout.contains("store: postgres://"), "\(made.stdout)")
        #expect(!made.stdout.contains(":securechannel@"), "no password printed: \(made.stdout)")
        _ = try await Tools.run("/bin/cp", ["-a", first, second])
        try await Self.issueConcurrently(
            directories: [first, second], count: 20, environment: ["SECURECHANNEL_CA_STORE": database.url])
        // Without the store, the directory says where its records are instead of showing an empty inventory.
        let bare = try await CLI.run(["ca", "list", "--dir", first], environment: ["SECURECHANNEL_CA_STORE": ""])
        #expect(bare.status == 1 && bare.stderr.contains("keeps its records in postgres://"), "\(bare.stderr)")
        #expect(!bare.stderr.contains(":securechannel@"))
        // TLS to the store is verified or off: libpq's unverified modes are refused with the alternatives.
        let unverified = try await CLI.run(["ca", "list", "--dir", first, "--store", database.url + "?sslmode=require"])
        #expect(unverified.status == 1 && unverified.stderr.contains("sslmode=verify-full"), "\(unverified.stderr)")
        await TestPostgres.drop(database)
    }

    @Test(
        "PostgreSQL: two CA processes issue and revoke at once, one SIGKILLed mid-way; the other's CRL holds every revocation, CRL numbers never repeat",
        .enabled(if: TestPostgres.enabled, TestPostgres.skipReason))
    func killedMidway() async throws {
        let database = try await TestPostgres.createDatabase()
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let first = dir.file("machine-a")
        let second = dir.file("machine-b")
        let environment = ["SECURECHANNEL_CA_STORE": database.url]
        let made = try await CLI.run(["ca", "init", "--dir", first, "--name", "Barry"], environment: environment)
        #expect(made.status == 0, "\(made.stderr)")
        _ = try await Tools.run("/bin/cp", ["-a", first, second])
        let binary = try Tools.securechannel()
        // Each loop issues a certificate, revokes it (which writes the CRL) and keeps a copy of that CRL.
        func loop(_ directory: String, _ label: String, _ rounds: Int) -> String {
            """
            set -e
            for i in $(seq 1 \(rounds)); do
              '\(binary)' ca issue client --dir '\(directory)' --name \(label)-$i --out '\(directory)/\(label)-'$i >/dev/null
              '\(binary)' ca revoke --dir '\(directory)' --name \(label)-$i >/dev/null
              cp '\(directory)/crl.pem' '\(directory)/crl-'$i'.pem'
              echo "round $i"
            done
            echo finished
            """
        }
        let doomed = try RunningProcess("/bin/bash", ["-c", loop(first, "a", 1000)], environment: environment)
        let survivor = try RunningProcess("/bin/bash", ["-c", loop(second, "b", 12)], environment: environment)
        defer {
            doomed.stop()
            survivor.stop()
        }
        _ = try await doomed.waitForOutput(timeout: 60) { $0.contains("round 3\n") }
        // SIGKILL the loop and whatever securechannel it is running (both name machine-a on their command line).
        _ = try await Tools.run("pkill", ["-KILL", "-f", first])
        let survived = try await survivor.waitForOutput(timeout: 120) {
            $0.contains("finished") || $0.contains("error")
        }
        #expect(survived.contains("finished"), "\(survived)")

        // One more CRL from the survivor: it lists every revocation either process committed.
        try await CLI.ok(["ca", "crl", "--dir", second], environment: environment)
        let final = try Self.crl("\(second)/crl.pem")
        let revoked = try await Self.list(second, ["--status", "revoked"], environment: environment)
        #expect(revoked.count >= 12 + 3, "the survivor's 12 and at least the killed one's 3")
        let listed = Set(final.entries.map(\.serial))
        #expect(Set(revoked.compactMap { $0["serial"] }) == listed, "the CRL holds exactly the store's revocations")
        #expect(revoked.contains { $0["name"]?.hasPrefix("a-") == true })

        // Every CRL either process wrote has its own number, and a higher number never lists less.
        var crls: [(number: Int, serials: Set<String>)] = []
        for directory in [first, second] {
            for file in try FileManager.default.contentsOfDirectory(atPath: directory) where file.hasPrefix("crl-") {
                let crl = try Self.crl("\(directory)/\(file)")
                crls.append((Self.number(crl), Set(crl.entries.map(\.serial))))
            }
        }
        crls.append((Self.number(final), listed))
        #expect(Set(crls.map(\.number)).count == crls.count, "no CRL number twice: \(crls.map(\.number).sorted())")
        let ordered = crls.sorted { $0.number < $1.number }
        for (lower, higher) in zip(ordered, ordered.dropFirst()) {
            #expect(lower.serials.isSubset(of: higher.serials), "CRL \(higher.number) lists all of CRL \(lower.number)")
        }
        await TestPostgres.drop(database)
    }
}

extension CLI {
    /// Runs and requires exit status 0, with extra environment.
    @discardableResult
    static func ok(_ arguments: [String], environment: [String: String]) async throws -> ProcessResult {
        let result = try await run(arguments, environment: environment)
        #expect(result.status == 0, "securechannel \(arguments.joined(separator: " ")) failed: \(result.stderr)")
        return result
    }
}
