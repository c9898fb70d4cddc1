import Foundation
import TestSupport
import Testing

/// `securechannel serve` running as a child process on 127.0.0.1 with a free port.
struct ServerProcess {
    let process: RunningProcess
    let port: Int

    static func start(
        dir: String, cert: String = "Jill", extra: [String] = ["--allow-any-client"], ca: String? = nil
    ) async throws -> ServerProcess {
        let process = try RunningProcess(
            try Tools.securechannel(),
            [
                "serve", "--listen", "127.0.0.1:0", "--cert", "\(dir)/\(cert).crt", "--key", "\(dir)/\(cert).key",
                "--ca", ca ?? "\(dir)/ca.crt",
            ] + extra)
        do {
            try await process.waitForOutput { $0.contains("listening on ") }
        } catch {
            process.stop()
            throw error
        }
        guard let port = process.port(after: "listening on ") else {
            process.stop()
            throw ProcessEnded(name: "serve", output: process.output())
        }
        return ServerProcess(process: process, port: port)
    }

    /// Runs `securechannel send` against this server as Chris (or `client`).
    func send(_ dir: String, _ messages: [String], client: String = "Chris", extra: [String] = [], stdin: String? = nil)
        async throws -> ProcessResult
    {
        try await CLI.run(
            [
                "send", "--connect", "127.0.0.1:\(port)", "--server-name", "localhost",
                "--cert", "\(dir)/\(client).crt", "--key", "\(dir)/\(client).key", "--ca", "\(dir)/ca.crt",
            ]
                + extra + messages, stdin: stdin)
    }

    /// Connects with OpenSSL presenting `client`'s certificate, whatever its purpose (`send` refuses to present
    /// a certificate that is not for clients), and sends one line; the server's verdict is in its log.
    func presentWithOpenSSL(_ dir: String, client: String) async throws -> ProcessResult {
        try await Tools.run(
            try Tools.require("openssl"),
            [
                "s_client", "-connect", "127.0.0.1:\(port)", "-servername", "localhost", "-cert",
                "\(dir)/\(client).crt",
                "-key", "\(dir)/\(client).key", "-CAfile", "\(dir)/ca.crt", "-quiet",
            ], stdin: "I am not a client\n", timeout: 20)
    }

    func stop() { process.stop() }
}
