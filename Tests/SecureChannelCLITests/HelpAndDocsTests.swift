import Foundation
import SecureChannelPKI
import TestSupport
import Testing

/// Issue 14: configuration-file messages, help examples, completions, the manual page and the README's examples.
@Suite("CLI: configuration messages, help, completion, manual, README", .timeLimit(.minutes(3)))
struct HelpAndDocsTests {
    /// Every command path of the tree (`[]` is the root), from the JSON the manual generator reads.
    static func commandPaths() async throws -> [[String]] {
        let dump = try await CLI.ok(["--experimental-dump-help"]).stdout
        let root = try #require(try JSONSerialization.jsonObject(with: Data(dump.utf8)) as? [String: Any])
        var paths: [[String]] = []
        func walk(_ command: [String: Any], _ path: [String]) {
            paths.append(path)
            for sub in command["subcommands"] as? [[String: Any]] ?? [] {
                if let name = sub["commandName"] as? String { walk(sub, path + [name]) }
            }
        }
        walk(try #require(root["command"] as? [String: Any]), [])
        return paths
    }

    @Test(
        "configuration files: an unknown section suggests the right one, keys get a did-you-mean, messages speak in keys"
    )
    func configurationMessages() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let pki = dir.file("pki")
        try await CLI.barryJillChris(in: pki)
        let cases: [(String, [String])] = [
            ("server:\n  listen: 127.0.0.1:0\n", ["unknown section 'server'", "did you mean 'serve'"]),
            ("serve:\n  listn: 127.0.0.1:0\n", ["unknown key 'listn'", "did you mean 'listen'"]),
            (
                "tunnels:\n  - name: r\n    mode: server\n    listen: 127.0.0.1:0\n    target: 10.1.2.3:6379\n"
                    + "    cert: pki/Jill.crt\n    key: pki/Jill.key\n    ca: pki/ca.crt\n    allow-any-client: true\n",
                ["set 'unsafe-target: true'"]
            ),
        ]
        for (index, (yaml, words)) in cases.enumerated() {
            let file = dir.file("c\(index).yaml")
            try SecureFile.write(yaml, to: file, mode: 0o644)
            let command = yaml.hasPrefix("tunnels") ? ["tunnel", "--config", file] : ["serve", "--config", file]
            let result = try await CLI.run(command)
            #expect(result.status == 1, "\(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
            for word in words { #expect(result.stderr.contains(word), "\(word) not in \(result.stderr)") }
            #expect(!result.stderr.contains("pass --"), "a file's problem is said in keys: \(result.stderr)")
        }
        let flags = try await CLI.run([
            "tunnel", "server", "--listen", "127.0.0.1:0", "--target", "10.1.2.3:6379", "--cert", "\(pki)/Jill.crt",
            "--key", "\(pki)/Jill.key", "--ca", "\(pki)/ca.crt", "--allow-any-client",
        ])
        #expect(flags.stderr.contains("pass --unsafe-target") && !flags.stderr.contains("unsafe-target: true"))
        let missing = try await CLI.run(["serve", "--config", dir.file("nowhere.yaml")])
        #expect(missing.status == 1 && missing.stderr.contains("configuration file \(dir.file("nowhere.yaml"))"))
    }

    @Test("every help example line is whole: nothing wrapped onto column 0, continuations indented, 80 columns")
    func helpExamples() async throws {
        for path in try await Self.commandPaths() where path != ["help"] {
            let help = try await CLI.ok(path + ["--help"]).stdout
            var inExamples = false
            var previous = ""
            for line in help.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
                if line.hasPrefix("EXAMPLE") && line.hasSuffix(":") {
                    inExamples = true
                } else if inExamples && !line.hasPrefix(" ") && line.hasSuffix(":") {
                    previous = line  // a heading of its own inside the examples ("Several tunnels from one file:")
                    continue
                } else if line.hasPrefix("USAGE:") || line.hasPrefix("OPTIONS:") {
                    inExamples = false
                } else if inExamples && !line.isEmpty {
                    #expect(line.hasPrefix("  "), "\(path): example wrapped onto column 0: '\(line)'")
                    #expect(line.count <= 80, "\(path): longer than 80 columns: '\(line)'")
                    #expect(line.trimmingCharacters(in: .whitespaces) != "\\", "\(path): a lone backslash")
                    if previous.hasSuffix(" \\") {
                        #expect(line.hasPrefix("      "), "\(path): continuation not indented: '\(line)'")
                    }
                }
                previous = line
            }
        }
    }

    @Test("completions: file options complete paths; --key-type, --reason, --mode, --framing complete their values")
    func completions() async throws {
        let bash = try await CLI.ok(["--generate-completion-script", "bash"]).stdout
        let lines = bash.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        func actions(for option: String) -> [String] {
            lines.indices.filter { lines[$0] == "'\(option)')" }.map { lines[$0 + 1] }
        }
        for option in [
            "--cert", "--key", "--ca", "--crl", "--config", "--csr", "--passphrase-file", "--key-out", "--csr-out",
            "--out",
        ] {
            let found = actions(for: option)
            #expect(!found.isEmpty, "\(option) is not in the completion script")
            for action in found { #expect(action.hasSuffix("-f"), "\(option) completes \(action), not paths") }
        }
        #expect(actions(for: "--dir").allSatisfy { $0.contains("-d") })
        let values: [(String, [String])] = [
            ("--key-type", KeyType.allCases.map(\.rawValue)),
            ("--reason", RevocationReason.allCases.map(\.name)),
            ("--mode", ["handshake", "echo", "bulk"]),
            ("--framing", ["lines", "length"]),
        ]
        for (option, words) in values {
            let found = actions(for: option)
            #expect(!found.isEmpty, "\(option) is not in the completion script")
            for action in found {
                for word in words { #expect(action.contains("'\(word)'"), "\(option) does not offer \(word)") }
            }
        }
    }

    /// Where `swift package plugin generate-manual` (the README's install step; `.ci/run` runs it) writes.
    static let manualPage = ".build/plugins/GenerateManual/outputs/securechannel/securechannel.1"

    @Test("the manual page generated by the generate-manual plugin covers every command and renders")
    func manualPage() async throws {
        let page = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(Self.manualPage).path
        guard SecureFile.exists(page) else {
            if Tools.interopRequired {
                Issue.record("\(page) is missing: .ci/run makes it with 'swift package plugin generate-manual'")
            } else {
                print("skipped: no manual page; make it with 'swift package plugin generate-manual'")
            }
            return
        }
        let text = try String(contentsOfFile: page, encoding: .utf8)
        // Each command is an item of its parent's list (`.It Em init` under `.It Em ca`), each option a flag.
        for path in try await Self.commandPaths() where !path.isEmpty && path != ["help"] {
            #expect(text.contains(".It Em \(path.last!)\n"), "the manual lacks \(path.joined(separator: " "))")
        }
        for option in ["server-name", "key-type", "expiring-within", "passphrase-file", "status"] {
            #expect(text.contains("Fl -\(option)"), "the manual lacks --\(option)")
        }
        let groff = try Tools.require("groff")
        let rendered = try await Tools.run(groff, ["-mandoc", "-Tutf8", page])
        let problems = rendered.stderr.split(separator: "\n").filter { !$0.contains("Empty input line") }
        #expect(rendered.status == 0 && problems.isEmpty, "\(rendered.stderr)")
        #expect(rendered.stdout.contains("securechannel ca init --dir pki --name Barry"))
    }

    @Test("README: the tunnel example's server certificate names the host the client connects to; tshark's 4588")
    func readmeExamples() async throws {
        let readme = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("README.md").path
        let text = try String(contentsOfFile: readme, encoding: .utf8)
        let section = try #require(text.components(separatedBy: "## Tunnels").dropFirst().first)
        let block = try #require(section.components(separatedBy: "```").dropFirst().first)
            .replacingOccurrences(of: "\\\n", with: " ")
        let commands = block.split(separator: "\n").map(String.init)
        func value(_ flag: String, in line: String) -> String? {
            let words = line.split(separator: " ").map(String.init)
            return words.firstIndex(of: flag).flatMap { $0 + 1 < words.count ? words[$0 + 1] : nil }
        }
        let server = try #require(commands.first { $0.contains("tunnel server") })
        let client = try #require(commands.first { $0.contains("tunnel client") })
        let target = try #require(value("--target", in: client)).split(separator: ":").first.map(String.init)
        let cert = try #require(value("--cert", in: server))
        let name = String(cert.dropFirst("pki/".count).dropLast(".crt".count))
        let issue = try #require(
            commands.first { $0.contains("ca issue server") && value("--name", in: $0) == name },
            "the example issues \(cert)")
        #expect(value("--dns", in: issue) == target, "\(cert) must name \(target ?? "?"): \(issue)")
        #expect(text.contains("0x11ec") && text.contains("4588"))
    }
}
