import Foundation
import SecureChannelPKI
import TestSupport
import Testing

/// Proof on the wire: a capture of loopback traffic while a unique marker crosses. Through SecureChannel the
/// marker must be nowhere in the capture; through a plaintext echo (the control) it must be found, which shows the
/// check itself can fail.
@Suite(
    "On the wire: tshark capture", .timeLimit(.minutes(3)),
    .enabled(
        if: Tools.enabled("tshark") && (getuid() == 0 || Tools.interopRequired),
        "needs tshark and root to capture on lo"))
struct WireCaptureTests {
    /// Captures loopback traffic on `port` while `body` runs; returns the pcap path.
    static func capture(port: Int, into dir: TemporaryDirectory, _ body: () async throws -> Void) async throws -> String
    {
        let tshark = try Tools.require("tshark")
        let file = dir.file("capture-\(port).pcap")
        let capture = try RunningProcess(tshark, ["-i", "lo", "-f", "tcp port \(port)", "-w", file])
        defer { capture.stop() }
        // "Capturing on" is printed before dumpcap is live; "Capture started" once it is.
        try await capture.waitForOutput { $0.contains("Capture started") }
        try await body()
        // dumpcap writes packets in batches and drops what it has not written when stopped: wait until the file
        // holds packets and has stopped growing (bounded) before stopping it.
        var last = -1
        for _ in 0..<50 {
            let size = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0
            if size > 400 && size == last { break }
            last = size
            try await Task.sleep(for: .milliseconds(200))  // polling the capture file's size
        }
        capture.signal(SIGINT)
        _ = try await capture.waitForExit()
        return file
    }

    /// The TCP payload of every stream in the capture, reassembled, as bytes.
    static func streams(_ pcap: String) async throws -> [UInt8] {
        let tshark = try Tools.require("tshark")
        let list = try await Tools.run(tshark, ["-r", pcap, "-T", "fields", "-e", "tcp.stream"])
        let ids = Set(list.stdout.split(separator: "\n").map(String.init))
        var bytes: [UInt8] = []
        for id in ids.sorted() {
            let follow = try await Tools.run(tshark, ["-r", pcap, "-q", "-z", "follow,tcp,raw,\(id)"])
            for line in follow.stdout.split(separator: "\n") {
                let hex = line.trimmingCharacters(in: .whitespaces)
                guard !hex.isEmpty, hex.allSatisfy(\.isHexDigit), hex.count % 2 == 0 else { continue }
                var index = hex.startIndex
                while index < hex.endIndex {
                    let next = hex.index(index, offsetBy: 2)
                    bytes.append(UInt8(hex[index..<next], radix: 16)!)
                    index = next
                }
            }
        }
        return bytes
    }

    static func contains(_ haystack: [UInt8], _ needle: String) -> Bool {
        let pattern = Array(needle.utf8)
        guard haystack.count >= pattern.count else { return false }
        return (0...(haystack.count - pattern.count)).contains {
            haystack[$0..<($0 + pattern.count)].elementsEqual(pattern)
        }
    }

    @Test("the marker never appears in a capture of send → serve; the handshake is TLS 1.3 with X25519MLKEM768")
    func encrypted() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        let server = try await ServerProcess.start(dir: dir.path)
        defer { server.stop() }
        let marker = "MARKER-\(UUID().uuidString)"
        let pcap = try await Self.capture(port: server.port, into: dir) {
            let result = try await server.send(dir.path, [marker, marker])
            #expect(result.stdout == "\(marker)\n\(marker)\n")
            try await server.process.waitForOutput { $0.contains("ended: closed by peer") }
        }
        let raw = try SecureFile.read(pcap)
        let reassembled = try await Self.streams(pcap)
        #expect(reassembled.count > 1000, "the capture saw the TLS traffic (pcap \(raw.count) bytes)")
        #expect(!Self.contains(raw, marker))
        #expect(!Self.contains(reassembled, marker))
        #expect(!Self.contains(reassembled, String(marker.prefix(12))))

        let tshark = try Tools.require("tshark")
        let hello = try await Tools.run(
            tshark,
            [
                "-r", pcap, "-d", "tcp.port==\(server.port),tls", "-Y", "tls.handshake.type == 2", "-T", "fields",
                "-e", "tls.handshake.extensions.supported_version", "-e", "tls.handshake.extensions_key_share_group",
            ])
        #expect(hello.stdout.contains("0x0304"), "ServerHello: \(hello.stdout)")
        #expect(
            hello.stdout.lowercased().contains("0x11ec") || hello.stdout.contains("4588"),
            "key share group: \(hello.stdout)")
    }

    /// The decrypted TLS application data of the capture (all streams), with or without a key log.
    static func decrypted(_ pcap: String, port: Int, keyLog: String?) async throws -> String {
        let tshark = try Tools.require("tshark")
        var arguments = ["-r", pcap, "-d", "tcp.port==\(port),tls"]
        if let keyLog { arguments += ["-o", "tls.keylog_file:\(keyLog)"] }
        let list = try await Tools.run(tshark, arguments + ["-T", "fields", "-e", "tcp.stream"])
        var text = ""
        for id in Set(list.stdout.split(separator: "\n").map(String.init)).sorted() {
            text += try await Tools.run(tshark, arguments + ["-q", "-z", "follow,tls,ascii,\(id)"]).stdout
        }
        return text
    }

    @Test(
        "with --keylog the same capture decrypts and shows the marker; without the key log it stays unreadable"
    )
    func keyLog() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        let keyLog = dir.file("server.keylog")
        let server = try await ServerProcess.start(dir: dir.path, extra: ["--allow-any-client", "--keylog", keyLog])
        defer { server.stop() }
        let marker = "MARKER-\(UUID().uuidString)"
        let pcap = try await Self.capture(port: server.port, into: dir) {
            // The client honours SSLKEYLOGFILE like curl; its warning goes to stderr.
            let result = try await CLI.run(
                [
                    "send", "--connect", "127.0.0.1:\(server.port)", "--server-name", "localhost", "--cert",
                    dir.file("Chris.crt"), "--key", dir.file("Chris.key"), "--ca", dir.file("ca.crt"), marker,
                ],
                environment: ProcessInfo.processInfo.environment.merging(
                    ["SSLKEYLOGFILE": dir.file("client.keylog")], uniquingKeysWith: { $1 }))
            #expect(result.stdout == "\(marker)\n")
            #expect(result.stderr.contains("anyone with this file can decrypt the traffic"), "\(result.stderr)")
            try await server.process.waitForOutput { $0.contains("ended: closed by peer") }
        }
        #expect(server.process.output().contains("anyone with this file can decrypt the traffic"))
        #expect(try SecureFile.mode(of: keyLog) == 0o600)
        let lines = try String(contentsOfFile: keyLog, encoding: .utf8).split(separator: "\n")
        #expect(lines.contains { $0.hasPrefix("CLIENT_TRAFFIC_SECRET_0 ") }, "NSS key log lines")
        let client = try String(contentsOfFile: dir.file("client.keylog"), encoding: .utf8)
        #expect(client.contains("SERVER_TRAFFIC_SECRET_0 "))

        let raw = try SecureFile.read(pcap)
        #expect(!Self.contains(raw, marker), "the bytes on the wire hold no marker")
        let without = try await Self.decrypted(pcap, port: server.port, keyLog: nil)
        #expect(!without.contains(marker), "no key log: nothing readable")
        let with = try await Self.decrypted(pcap, port: server.port, keyLog: keyLog)
        #expect(with.contains(marker), "the key log decrypts the same capture: \(with.prefix(600))")
        let withClients = try await Self.decrypted(pcap, port: server.port, keyLog: dir.file("client.keylog"))
        #expect(withClients.contains(marker), "the client's key log decrypts it too")
    }

    @Test("demo --capture leaves a capture and a key log; its two tshark commands show records, then Hello Jill")
    func demoCapture() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let demo = try await CLI.ok(["demo", "--capture", dir.path, "--message", "Hello Jill"])
        let pcap = dir.file("demo.pcapng")
        #expect(SecureFile.exists(pcap) && SecureFile.exists(dir.file("demo.keylog")))
        #expect(demo.stderr.contains("anyone with this file can decrypt the traffic"))
        let commands = demo.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { $0.hasPrefix("tshark -r ") }
        try #require(commands.count == 2, "\(demo.stdout)")
        let tshark = try Tools.require("tshark")
        func run(_ command: String) async throws -> String {
            try await Tools.run(tshark, Array(command.split(separator: " ").dropFirst().map(String.init))).stdout
        }
        let records = try await run(commands[0])
        #expect(records.contains("TLSv1.3") && !records.contains("Hello Jill"), "\(records)")
        let conversation = try await run(commands[1])
        #expect(conversation.contains("Hello Jill"), "\(conversation)")
        let port = try #require(commands[1].split(separator: " ").first { $0.hasPrefix("tcp.port==") })
        let locked = try await Tools.run(
            tshark, ["-r", pcap, "-d", String(port), "-q", "-z", "follow,tls,ascii,0"])
        #expect(!locked.stdout.contains("Hello Jill"), "without the key log the same capture stays unreadable")

        let missing = try await CLI.run(
            ["demo", "--capture", dir.path], environment: ["PATH": "/nonexistent", "HOME": dir.path])
        #expect(missing.status == 1 && missing.stderr.contains("needs tshark"), "\(missing.stderr)")
    }

    @Test(
        "control: the same capture around a plaintext TCP echo finds the marker",
        .enabled(if: Tools.enabled("python3"), "needs python3"))
    func plaintextControl() async throws {
        let python = try Tools.require("python3")
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let echo = try RunningProcess(
            python,
            [
                "-u", "-c",
                """
                import socket
                s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
                print("PORT:%d" % s.getsockname()[1], flush=True)
                c, _ = s.accept()
                while True:
                    data = c.recv(4096)
                    if not data: break
                    c.sendall(data)
                c.close()
                """,
            ])
        defer { echo.stop() }
        try await echo.waitForOutput { $0.contains("PORT:") }
        let port = try #require(echo.port(after: "PORT"))
        let marker = "MARKER-\(UUID().uuidString)"
        let pcap = try await Self.capture(port: port, into: dir) {
            let client = try await Tools.run(
                python,
                [
                    "-c",
                    """
                    import socket, sys
                    c = socket.create_connection(("127.0.0.1", \(port)))
                    c.sendall(sys.argv[1].encode() + b"\\n")
                    print(c.recv(4096).decode().strip())
                    c.close()
                    """, marker,
                ])
            #expect(client.stdout.contains(marker))
            _ = try await echo.waitForExit()
        }
        #expect(Self.contains(try SecureFile.read(pcap), marker))
        #expect(Self.contains(try await Self.streams(pcap), marker))
    }
}
