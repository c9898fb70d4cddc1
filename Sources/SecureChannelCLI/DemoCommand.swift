import ArgumentParser
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import SecureChannel
import SecureChannelPKI
import ServiceLifecycle

/// `securechannel demo`: the whole exercise in one command.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the whole story: Barry's CA, Jill's server, Chris's client, a message and its reply.",
        discussion: """
            Makes the CA and both certificates in a temporary folder (or --dir), starts Jill's server on \
            127.0.0.1 (a free port), has Chris send a message, prints the reply and what each side verified, \
            then stops the server.

            EXAMPLE:
              securechannel demo --message "Hello Jill"
            """
    )

    @Option(
        help: ArgumentHelp(
            "Folder for the CA and certificates (must not hold a CA yet; default: a temporary folder).",
            valueName: "dir"), completion: .directory)
    var dir: String?

    @Option(help: "The message Chris sends.")
    var message: String = "Hello Jill"

    @Option(
        help: ArgumentHelp(
            "Capture the story with tshark into DIR/demo.pcapng, with Chris's TLS secrets in DIR/demo.keylog.",
            valueName: "dir"), completion: .directory)
    var capture: String?

    func run() async throws {
        let temporary = dir == nil
        let directory =
            dir
            ?? FileManager.default.temporaryDirectory.appendingPathComponent(
                "securechannel-demo-\(UUID().uuidString.prefix(8))"
            ).path
        // Interrupted (SIGINT, SIGTERM) or not, a temporary folder with a CA key in it never stays behind.
        let cleanup = temporary ? InterruptCleanup(removing: directory) : nil
        defer { cleanup?.finish() }

        let (barry, jill, chris) =
            try cleanup?.whileWriting { try Self.makePKI(in: directory) }
            ?? Self.makePKI(in: directory)
        Console.out("1. Barry, the CA:       \(barry.certificatePath)")
        Console.out("2. Jill's server cert:  \(jill.certificatePath) (serverAuth; DNS:localhost, IP:127.0.0.1)")
        Console.out("3. Chris's client cert: \(chris.certificatePath) (clientAuth)")

        let trust = try TrustAnchors([barry.certificate])
        let seen = NIOLockedValueBox<PeerIdentity?>(nil)
        var logger = Logger(label: "securechannel.demo") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = .warning
        let server = try MessageServer(
            configuration: MessageServerConfiguration(
                host: "127.0.0.1", port: 0,
                identity: try TLSIdentity.load(certificateFile: jill.certificatePath, keyFile: jill.keyPath),
                trust: trust, rules: AccessRules(commonNames: ["Chris"])),
            logger: logger
        ) { message, peer in
            seen.withLockedValue { $0 = peer }
            return message
        }
        let services = ServiceGroup(configuration: .init(services: [.init(service: server)], logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await services.run() }
            let address = try await server.listeningAddress()
            Console.out(
                "4. Jill listening on \(Endpoint.display(address)): TLS 1.3 only, client certificate required, allows CN=Chris"
            )
            var tls = TLSPolicy.default
            var recording: PacketCapture?
            if let capture {
                do {
                    try SecureFile.requireWritableDirectory(capture)
                    tls.keyLog = try KeyLog.file("\(capture)/demo.keylog")
                    recording = try await PacketCapture(port: address.port ?? 0, file: "\(capture)/demo.pcapng")
                } catch {
                    await services.triggerGracefulShutdown()
                    throw error
                }
                Console.error("warning: \(tls.keyLog!.warning)")
            }
            let client = try await MessageClient.connect(
                MessageClientConfiguration(
                    host: "127.0.0.1", port: address.port ?? 0, serverName: "localhost",
                    identity: try TLSIdentity.load(certificateFile: chris.certificatePath, keyFile: chris.keyPath),
                    trust: trust, tls: tls))
            Console.out("5. Chris -> Jill: \(message)")
            let reply = try await client.send(message)
            Console.out("6. Jill -> Chris: \(reply)")
            await client.close()
            Console.out("")
            Console.out(
                "Chris verified Jill: \(client.server) issued by \(client.server.issuer), name 'localhost' matches")
            if let peer = seen.withLockedValue({ $0 }) {
                Console.out("Jill verified Chris: \(peer) issued by \(peer.issuer), allowed by CN=Chris")
            }
            Console.out(
                "TLS: \(client.session.tlsVersion), \(client.session.cipherSuite), key exchange \(client.session.keyExchangeGroup ?? "unknown")"
            )
            if let recording {
                await recording.stop()
                let port = address.port ?? 0
                Console.out("")
                Console.out("Captured to \(recording.file); Chris's TLS secrets in \(capture!)/demo.keylog.")
                Console.out("Only TLS records, nothing readable:")
                Console.out("  tshark -r \(recording.file) -d tcp.port==\(port),tls -Y tls")
                Console.out("With the key log, the decrypted conversation (\"\(message)\" both ways):")
                Console.out(
                    "  tshark -r \(recording.file) -d tcp.port==\(port),tls -o tls.keylog_file:\(capture!)/demo.keylog -q -z follow,tls,ascii,0"
                )
            }
            await services.triggerGracefulShutdown()
            try await group.waitForAll()
        }
        Console.out(
            "Jill's server stopped." + (temporary ? " (temporary files removed)" : " Files kept in \(directory)."))
    }

    static func makePKI(in directory: String) throws -> (CertificateAuthority, IssuedCertificate, IssuedCertificate) {
        let barry = try CertificateAuthority.create(directory: directory, name: "Barry")
        let jill = try barry.issue(.server(name: "Jill", dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"]))
        let chris = try barry.issue(.client(name: "Chris"))
        return (barry, jill, chris)
    }
}

/// Removes a folder when the command ends, and also when SIGINT or SIGTERM ends it early (then the exit status is
/// 128 + the signal, as a shell shows it). Files are written only inside ``whileWriting(_:)``, which a signal waits
/// for, so nothing is created after the folder is gone.
///
/// The handler is installed with sigaction before the folder exists (a dispatch signal source is armed
/// asynchronously and misses a signal that comes at once); it only writes the signal's number to a pipe, and a
/// thread of this type does the removal.
final class InterruptCleanup: @unchecked Sendable {
    private let path: String
    private let lock = NSLock()
    /// The pipe's write end, for the signal handler (which can capture nothing).
    nonisolated(unsafe) private static var writeEnd: Int32 = -1

    init(removing path: String) {
        self.path = path
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { return }
        Self.writeEnd = ends[1]
        let readEnd = ends[0]
        Thread { [self] in
            var number: UInt8 = 0
            while read(readEnd, &number, 1) < 0 && errno == EINTR {}
            lock.lock()  // held until exit: no file is written after the removal
            try? FileManager.default.removeItem(atPath: self.path)
            Console.write(STDERR_FILENO, "interrupted: removed \(self.path)\n", onClosedPipe: .drop)
            exit(128 + Int32(number))
        }.start()
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { number in
            var byte = UInt8(truncatingIfNeeded: number)
            _ = write(InterruptCleanup.writeEnd, &byte, 1)
        }
        sigemptyset(&action.sa_mask)
        for number in [SIGINT, SIGTERM] { sigaction(number, &action, nil) }
    }

    func whileWriting<T>(_ body: () throws -> T) rethrows -> T {
        try lock.withLock { try body() }
    }

    /// The normal end: remove the folder, give the signals back their default.
    func finish() {
        lock.withLock {
            try? FileManager.default.removeItem(atPath: path)
            signal(SIGINT, SIG_DFL)
            signal(SIGTERM, SIG_DFL)
        }
    }
}
