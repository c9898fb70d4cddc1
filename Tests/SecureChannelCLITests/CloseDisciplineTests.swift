import Foundation
import TestSupport
import Testing

/// The close discipline of every fatal TLS error (RFC 8446 §6.2), seen by a real peer (Python's ssl over a raw
/// socket, which lets the test corrupt a record): the alert arrives, then the FIN, and never a reset in its place.
@Suite("CLI: fatal TLS errors close with their alert", .timeLimit(.minutes(3)))
struct CloseDisciplineTests {
    /// A TLS client over memory BIOs: `flip` sends one good record (its echo is the control) and then one with a
    /// flipped ciphertext byte; `nocert N` makes N connections without a client certificate. Prints one line per
    /// outcome: `ALERT <reason>`, `RESET`, `EOF-WITHOUT-ALERT`, `NO-CLOSE`.
    static let probe = #"""
        import socket, ssl, sys
        host, port, ca, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
        cert, key = (sys.argv[5], sys.argv[6]) if mode.startswith("flip") else (None, None)
        tls12 = "tls12" in mode
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(ca)
        if tls12:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        if cert:
            ctx.load_cert_chain(cert, key)
        sock = inc = out = obj = None

        def connect():
            global sock, inc, out, obj
            sock = socket.create_connection((host, port), timeout=10)
            inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
            obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
            while True:
                try:
                    obj.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    flush()
                    pump()
            flush()

        def flush():
            if out.pending:
                sock.sendall(out.read())

        def pump():
            data = sock.recv(65536)
            if not data:
                raise EOFError()
            inc.write(data)

        def read_line():
            got = b""
            while not got.endswith(b"\n"):
                try:
                    got += obj.read(65536)
                except ssl.SSLWantReadError:
                    pump()
            return got

        def outcome():
            # Everything the server sends until it closes, then what TLS makes of it.
            try:
                while True:
                    data = sock.recv(65536)
                    if not data:
                        break
                    inc.write(data)
            except ConnectionResetError:
                return "RESET"
            except socket.timeout:
                return "NO-CLOSE"
            try:
                while True:
                    if not obj.read(65536):
                        return "EOF"
            except ssl.SSLWantReadError:
                return "EOF-WITHOUT-ALERT"
            except ssl.SSLError as error:
                return "ALERT " + (error.reason or str(error))

        if mode.startswith("flip"):
            connect()
            obj.write(b"ping\n"); flush()
            print("ECHO " + read_line().decode().strip())
            obj.write(b"hello there\n")
            record = bytearray(out.read())
            record[-3] ^= 0x01
            sock.sendall(bytes(record))
            print(outcome())
        elif mode == "nocert":
            for _ in range(int(sys.argv[5])):
                connect()
                obj.write(b"hello\n"); flush()
                print(outcome())
                sock.close()
        """#

    static func runProbe(_ arguments: [String]) async throws -> [String] {
        let python = try Tools.require("python3")
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try Data(probe.utf8).write(to: URL(fileURLWithPath: dir.file("probe.py")))
        let result = try await Tools.run(python, [dir.file("probe.py")] + arguments, timeout: 60)
        #expect(result.status == 0, "probe: \(result.stderr)")
        return result.stdout.split(separator: "\n").map(String.init)
    }

    @Test(
        "serve: a flipped byte in an application-data record gets bad_record_mac; a missing client certificate gets its alert, not a reset (20 of 20)",
        .enabled(if: Tools.enabled("python3"), "needs python3"))
    func serveAlerts() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        let server = try await ServerProcess.start(dir: dir.path)
        defer { server.stop() }
        let flip = try await Self.runProbe([
            "127.0.0.1", "\(server.port)", dir.file("ca.crt"), "flip", dir.file("Chris.crt"),
            dir.file("Chris.key"),
        ])
        #expect(
            flip == ["ECHO ping", "ALERT SSLV3_ALERT_BAD_RECORD_MAC"],
            "the intact record echoes, the corrupted one gets the alert")
        let missing = try await Self.runProbe(["127.0.0.1", "\(server.port)", dir.file("ca.crt"), "nocert", "20"])
        #expect(
            missing.count == 20 && missing.allSatisfy { $0 == "ALERT TLSV13_ALERT_CERTIFICATE_REQUIRED" }, "\(missing)")
    }

    @Test(
        "tunnel server --tls-min 1.2: a corrupted TLS 1.2 record gets bad_record_mac before the close",
        .enabled(if: Tools.enabled("python3"), "needs python3"))
    func tunnelAlerts() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        let (echo, echoPort) = try await ListenerCoreTests.echoServer()
        defer { echo.stop() }
        let (tunnel, port) = try await TunnelCLITests.start([
            "server", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:\(echoPort)", "--tls-min", "1.2",
            "--cert", dir.file("Jill.crt"), "--key", dir.file("Jill.key"), "--ca", dir.file("ca.crt"), "--allow-cn",
            "Chris",
        ])
        defer { tunnel.stop() }
        let flip = try await Self.runProbe([
            "127.0.0.1", "\(port)", dir.file("ca.crt"), "flip-tls12", dir.file("Chris.crt"),
            dir.file("Chris.key"),
        ])
        #expect(flip == ["ECHO ping", "ALERT SSLV3_ALERT_BAD_RECORD_MAC"], "\(flip)")
    }
}
