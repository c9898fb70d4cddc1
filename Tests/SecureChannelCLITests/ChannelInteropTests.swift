import Foundation
import SecureChannelPKI
import TestSupport
import Testing

@Suite("Interop: our server and client with openssl, gnutls-cli and Python", .timeLimit(.minutes(5)))
struct ChannelInteropTests {
    func sClient(_ port: Int, _ dir: TemporaryDirectory, cert: String?, extra: [String] = []) throws -> RunningProcess {
        var arguments = [
            "s_client", "-connect", "127.0.0.1:\(port)", "-servername", "localhost", "-verify_hostname", "localhost",
            "-CAfile", dir.file("ca.crt"), "-verify_return_error", "-quiet", "-ign_eof",
        ]
        if let cert { arguments += ["-cert", dir.file("\(cert).crt"), "-key", dir.file("\(cert).key")] }
        return try RunningProcess(try Tools.require("openssl"), arguments + extra)
    }

    /// Sends a line and reports whether it came back.
    func echoed(_ client: RunningProcess, _ line: String) async -> Bool {
        client.send(line + "\n")
        do {
            try await client.waitForOutput(timeout: 10) { $0.contains(line) }
            return true
        } catch {
            return false
        }
    }

    @Test(
        "openssl s_client: with Chris's certificate it gets replies; without one, or with TLS 1.2, it does not",
        .enabled(if: Tools.enabled("openssl"), "needs openssl"))
    func opensslClient() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        let server = try await ServerProcess.start(dir: dir.path)
        defer { server.stop() }
        let good = try sClient(server.port, dir, cert: "Chris")
        defer { good.stop() }
        #expect(await echoed(good, "hello from openssl"))
        let anonymous = try sClient(server.port, dir, cert: nil)
        defer { anonymous.stop() }
        #expect(await !echoed(anonymous, "no certificate here"))
        let old = try sClient(server.port, dir, cert: "Chris", extra: ["-tls1_2"])
        defer { old.stop() }
        #expect(await !echoed(old, "tls twelve"))
        let ancient = try sClient(server.port, dir, cert: "Chris", extra: ["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"])
        defer { ancient.stop() }
        #expect(await !echoed(ancient, "tls eleven"))
        let log = try await server.process.waitForOutput {
            $0.contains("no client certificate") && $0.components(separatedBy: "unsupported TLS version").count > 2
        }
        // OpenSSL 3.0 has no ML-KEM: the server falls back to X25519 for it.
        #expect(log.contains("TLSv1.3 TLS_AES_") || log.contains("TLSv1.3 TLS_CHACHA"))
        #expect(log.contains(" X25519\n") || log.contains(" X25519 "))
    }

    @Test(
        "--tls-min 1.2 accepts TLS 1.2 with an ECDHE AEAD suite",
        .enabled(if: Tools.enabled("openssl"), "needs openssl"))
    func tls12() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        let server = try await ServerProcess.start(dir: dir.path, extra: ["--allow-any-client", "--tls-min", "1.2"])
        defer { server.stop() }
        let client = try sClient(server.port, dir, cert: "Chris", extra: ["-tls1_2"])
        defer { client.stop() }
        #expect(await echoed(client, "tls twelve ok"))
        let log = try await server.process.waitForOutput { $0.contains("TLSv1.2") }
        #expect(log.contains("TLS_ECDHE_ECDSA_WITH_") && log.contains("GCM") || log.contains("CHACHA20"))
        // A CBC-only client finds nothing in common.
        let cbc = try sClient(server.port, dir, cert: "Chris", extra: ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"])
        defer { cbc.stop() }
        #expect(await !echoed(cbc, "cbc please"))
    }

    @Test(
        "gnutls-cli talks to our server with a client certificate",
        .enabled(if: Tools.enabled("gnutls-cli"), "needs gnutls-cli (gnutls-bin)"))
    func gnutls() async throws {
        let gnutls = try Tools.require("gnutls-cli")
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        let server = try await ServerProcess.start(dir: dir.path)
        defer { server.stop() }
        let client = try RunningProcess(
            gnutls,
            [
                "--x509cafile", dir.file("ca.crt"), "--x509certfile", dir.file("Chris.crt"), "--x509keyfile",
                dir.file("Chris.key"),
                "--verify-hostname", "localhost", "-p", "\(server.port)", "127.0.0.1",
            ])
        defer { client.stop() }
        try await client.waitForOutput { $0.contains("Handshake was completed") }
        #expect(await echoed(client, "hello from gnutls"))
    }

    @Test(
        "Python's ssl module: replies with a client certificate, refusal without",
        .enabled(if: Tools.enabled("python3"), "needs python3"))
    func python() async throws {
        let python = try Tools.require("python3")
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        let server = try await ServerProcess.start(dir: dir.path)
        defer { server.stop() }
        let script = """
            import socket, ssl, sys
            port, ca, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
            if cert != "-":
                ctx.load_cert_chain(cert, key)
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                    with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                        tls.sendall(b"hello from python\\n")
                        data = tls.recv(1024)
                        print("REPLY:" + data.decode().strip() if data else "CLOSED")
            except Exception as error:
                print("ERROR:" + type(error).__name__ + ":" + str(error))
            """
        try SecureFile.write(script, to: dir.file("client.py"), mode: 0o644)
        let with = try await Tools.run(
            python,
            [dir.file("client.py"), "\(server.port)", dir.file("ca.crt"), dir.file("Chris.crt"), dir.file("Chris.key")])
        #expect(with.stdout.contains("REPLY:hello from python"), "\(with.stdout) \(with.stderr)")
        let without = try await Tools.run(
            python, [dir.file("client.py"), "\(server.port)", dir.file("ca.crt"), "-", "-"])
        #expect(!without.stdout.contains("REPLY:"), "\(without.stdout)")
        #expect(without.stdout.contains("ERROR:") || without.stdout.contains("CLOSED"))
    }

    /// Python leaves Nagle on: without an immediate ACK of its Finished, its first message waited for the
    /// kernel's 40 ms delayed ACK (Linux's minimum), every time. The fastest of 15 first round trips must come in
    /// under that floor (a loaded machine makes some round trips slow, but the stall made every one of them
    /// 40 ms or more).
    @Test(
        "a Nagle client's first message is not held back by a delayed ACK",
        .enabled(if: Tools.enabled("python3"), "needs python3"))
    func firstMessageNotDelayed() async throws {
        let python = try Tools.require("python3")
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        let server = try await ServerProcess.start(dir: dir.path)
        defer { server.stop() }
        let script = """
            import socket, ssl, sys, time
            port, pki = int(sys.argv[1]), sys.argv[2]
            ctx = ssl.create_default_context(cafile=pki + "/ca.crt")
            ctx.load_cert_chain(pki + "/Chris.crt", pki + "/Chris.key")
            times = []
            for _ in range(15):
                with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="localhost") as tls:
                    start = time.monotonic()
                    tls.sendall(b"first\\n")
                    assert tls.recv(64) == b"first\\n"
                    times.append((time.monotonic() - start) * 1000)
            times.sort()
            print("FASTEST_MS:%.2f" % times[0], "ALL:" + ",".join("%.1f" % t for t in times))
            """
        try SecureFile.write(script, to: dir.file("first.py"), mode: 0o644)
        // A delayed ACK holds back every first message (~40 ms each time); a loaded machine only some. So up to three
        // rounds of 15, spread in time: the bug fails all of them, a busy moment passes in a later round.
        var rounds: [String] = []
        for _ in 0..<3 {
            let result = try await Tools.run(python, [dir.file("first.py"), "\(server.port)", dir.path])
            let fastest = try #require(
                result.stdout.split(separator: " ").first { $0.hasPrefix("FASTEST_MS:") }
                    .flatMap { Double($0.dropFirst("FASTEST_MS:".count)) }, "\(result.stdout) \(result.stderr)")
            rounds.append(result.stdout)
            if fastest < 39 { break }
        }
        let best =
            rounds.compactMap { round in
                round.split(separator: " ").first { $0.hasPrefix("FASTEST_MS:") }
                    .flatMap { Double($0.dropFirst("FASTEST_MS:".count)) }
            }.min() ?? .infinity
        #expect(best < 39, "first round trips: \(rounds)")
    }

    @Test(
        "our send against openssl s_server -Verify 1 -verify_return_error",
        .enabled(if: Tools.enabled("openssl"), "needs openssl"))
    func sendToOpenSSL() async throws {
        let openssl = try Tools.require("openssl")
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        let server = try RunningProcess(
            openssl,
            [
                "s_server", "-accept", "127.0.0.1:0", "-rev", "-cert", dir.file("Jill.crt"), "-key",
                dir.file("Jill.key"),
                "-CAfile", dir.file("ca.crt"), "-Verify", "1", "-verify_return_error",
            ])
        defer { server.stop() }
        try await server.waitForOutput { $0.contains("ACCEPT") }
        let port = try #require(server.port(after: "ACCEPT"))
        let result = try await CLI.run([
            "send", "--connect", "127.0.0.1:\(port)", "--server-name", "localhost", "--cert", dir.file("Chris.crt"),
            "--key", dir.file("Chris.key"), "--ca", dir.file("ca.crt"), "stressed",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "desserts\n")
    }

    @Test(
        "certificates made by the openssl CLI (RSA and EC) work with serve and send",
        .enabled(if: Tools.enabled("openssl"), "needs openssl"), arguments: ["rsa:2048", "ec"])
    func opensslMadeCertificates(algorithm: String) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let newkey =
            algorithm == "ec" ? ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] : ["-newkey", algorithm]
        try await OpenSSL.run(
            [
                "req", "-x509", "-nodes", "-keyout", dir.file("ca.key"), "-out", dir.file("ca.crt"), "-days", "30",
                "-subj", "/CN=Barry",
            ] + newkey)
        try SecureFile.write(
            "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n", to: dir.file("server.ext"), mode: 0o644)
        try SecureFile.write("extendedKeyUsage=clientAuth\n", to: dir.file("client.ext"), mode: 0o644)
        for (name, ext) in [("Jill", "server.ext"), ("Chris", "client.ext")] {
            try await OpenSSL.run(
                [
                    "req", "-new", "-nodes", "-keyout", dir.file("\(name).key"), "-out", dir.file("\(name).csr"),
                    "-subj", "/CN=\(name)",
                ] + newkey)
            try await OpenSSL.run([
                "x509", "-req", "-in", dir.file("\(name).csr"), "-CA", dir.file("ca.crt"), "-CAkey", dir.file("ca.key"),
                "-days", "10", "-extfile", dir.file(ext), "-out", dir.file("\(name).crt"),
            ])
        }
        let server = try await ServerProcess.start(dir: dir.path, extra: ["--allow-cn", "Chris"])
        defer { server.stop() }
        let result = try await server.send(dir.path, ["made by openssl"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "made by openssl\n")
    }

    @Test("garbage and plaintext on the TLS port are logged and the server keeps serving")
    func garbage() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        let server = try await ServerProcess.start(dir: dir.path)
        defer { server.stop() }
        for junk in [
            "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "hello there, not TLS at all\n",
            String(repeating: "\u{16}\u{03}\u{01}\u{FF}\u{FF}", count: 50),
        ] {
            try PlainTCP.sendAndClose(port: server.port, Array(junk.utf8))
        }
        let log = try await server.process.waitForOutput { $0.components(separatedBy: "handshake failed").count > 3 }
        #expect(log.contains("plaintext HTTP"))
        let result = try await server.send(dir.path, ["still alive"])
        #expect(result.stdout == "still alive\n")
    }
}

/// Plain TCP for tests: raw bytes to a port.
enum PlainTCP {
    static func sendAndClose(port: Int, _ bytes: [UInt8]) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TimedOut(what: "socket()", seconds: 0) }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw TimedOut(what: "connect to \(port)", seconds: 0) }
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        shutdown(fd, Int32(SHUT_WR))
        var buffer = [UInt8](repeating: 0, count: 4096)
        while recv(fd, &buffer, buffer.count, 0) > 0 {}
    }
}
