import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import SecureChannel
import SecureChannelPKI
import ServiceLifecycle
import TestSupport
import Testing

/// Barry's CA with Jill (server) and Chris (client), generated at runtime.
struct TestPKI {
    let dir: TemporaryDirectory
    let ca: CertificateAuthority
    let trust: TrustAnchors

    init(keyType: KeyType = .ecdsaP256) throws {
        dir = try TemporaryDirectory()
        ca = try CertificateAuthority.create(directory: dir.path, name: "Barry", keyType: keyType)
        trust = try TrustAnchors([ca.certificate])
        _ = try ca.issue(.server(name: "Jill", dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"], keyType: keyType))
        _ = try ca.issue(.client(name: "Chris", keyType: keyType))
    }

    func identity(_ name: String) throws -> TLSIdentity {
        try TLSIdentity.load(certificateFile: dir.file("\(name).crt"), keyFile: dir.file("\(name).key"))
    }

    /// Issues another client certificate, optionally in the past (for expired ones).
    func client(_ name: String, now: Date = Date(), days: Int = 90, uris: [String] = []) throws -> TLSIdentity {
        let issued = try ca.issue(.client(name: name, uris: uris, days: days), now: now)
        return try TLSIdentity.load(certificateFile: issued.certificatePath, keyFile: issued.keyPath)
    }

    /// Jill's files with Barry's CA, and `crl.pem` when `crl` is set.
    func files(crl: Bool = false) -> TLSMaterialFiles {
        TLSMaterialFiles(certificate: dir.file("Jill.crt"), key: dir.file("Jill.key"), ca: dir.file("ca.crt"),
                         crls: crl ? [dir.file("crl.pem")] : [])
    }

    func cleanup() { dir.cleanup() }
}

/// A running server on 127.0.0.1 with a random port, stopped by `stop()`.
struct RunningServer {
    let server: MessageServer
    let services: ServiceGroup
    let task: Task<Void, any Error>
    let port: Int

    static func start(
        _ pki: TestPKI, rules: AccessRules = .anyClient, watching files: TLSMaterialFiles? = nil,
        configure: (inout MessageServerConfiguration) -> Void = { _ in }, handler: MessageHandler? = nil,
        log: LogCapture? = nil
    ) async throws -> RunningServer {
        var configuration = try files.map { try MessageServerConfiguration(host: "127.0.0.1", port: 0, files: $0, rules: rules) }
            ?? MessageServerConfiguration(identity: try pki.identity("Jill"), trust: pki.trust, rules: rules)
        configure(&configuration)
        var logger = log.map { capture in Logger(label: "test.server") { _ in capture.handler } } ?? Logger(label: "test.server")
        logger.logLevel = log == nil ? .critical : .info
        let server = try MessageServer(configuration: configuration, logger: logger, handler: handler ?? { message, _ in message })
        let services = ServiceGroup(configuration: .init(services: [.init(service: server)], logger: logger))
        let task = Task { try await services.run() }
        let address = try await server.listeningAddress()
        return RunningServer(server: server, services: services, task: task, port: try #require(address.port))
    }

    func clientConfiguration(_ identity: TLSIdentity, trust: TrustAnchors, serverName: String? = "localhost",
                             framing: Framing = .lines) -> MessageClientConfiguration {
        MessageClientConfiguration(host: "127.0.0.1", port: port, serverName: serverName, identity: identity, trust: trust,
                                   framing: framing, timeout: .seconds(10))
    }

    func stop() async throws {
        await services.triggerGracefulShutdown()
        try await task.value
    }
}

/// The `SecureChannelError` code a throwing body produced, or nil.
func channelErrorCode(_ body: () async throws -> Void) async -> SecureChannelError.Code? {
    do {
        try await body()
        return nil
    } catch let error as SecureChannelError {
        return error.code
    } catch {
        Issue.record("unexpected error type: \(error)")
        return nil
    }
}

/// Collects a server's log lines in memory, so that tests can check the reason it gives.
final class LogCapture: Sendable {
    private let lines = NIOLockedValueBox<[String]>([])

    /// A handler writing into this capture.
    var handler: some LogHandler { Handler(capture: self) }

    /// Every line so far.
    var all: [String] { lines.withLockedValue { $0 } }

    /// Waits (polling, at most `timeout` seconds) for a line that satisfies `predicate`; returns it or nil.
    func waitForLine(timeout: Double = 10, _ predicate: (String) -> Bool) async -> String? {
        let deadline = Date() + timeout
        while Date() < deadline {
            if let line = all.first(where: predicate) { return line }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return all.first(where: predicate)
    }

    /// Waits (polling, at most `timeout` seconds) until `atLeast` lines contain `part`; returns the count.
    func waitForCount(of part: String, atLeast: Int, timeout: Double) async -> Int {
        let deadline = Date() + timeout
        var count = 0
        var checked = 0
        while Date() < deadline {
            let lines = all
            count += lines[checked...].filter { $0.contains(part) }.count
            checked = lines.count
            if count >= atLeast { return count }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return count
    }

    private struct Handler: LogHandler {
        let capture: LogCapture
        var logLevel: Logger.Level = .info
        var metadata: Logger.Metadata = [:]
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            capture.lines.withLockedValue { $0.append("\(event.level) \(event.message)") }
        }
    }
}
