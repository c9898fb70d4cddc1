import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import SecureChannel
import ServiceLifecycle
import Testing

/// A running server on 127.0.0.1 with a random port, stopped by `stop()`.
public struct RunningServer: Sendable {
    public let server: MessageServer
    public let services: ServiceGroup
    public let task: Task<Void, any Error>
    public let port: Int

    public static func start(
        _ pki: TestPKI, rules: AccessRules = .anyClient, watching files: TLSMaterialFiles? = nil,
        configure: (inout MessageServerConfiguration) -> Void = { _ in }, handler: MessageHandler? = nil,
        log: LogCapture? = nil
    ) async throws -> RunningServer {
        var configuration =
            try files.map { try MessageServerConfiguration(host: "127.0.0.1", port: 0, files: $0, rules: rules) }
            ?? MessageServerConfiguration(identity: try pki.identity("Jill"), trust: pki.trust, rules: rules)
        configure(&configuration)
        var logger =
            log.map { capture in Logger(label: "test.server") { _ in capture.handler } } ?? Logger(label: "test.server")
        logger.logLevel = log == nil ? .critical : .info
        let server = try MessageServer(
            configuration: configuration, logger: logger, handler: handler ?? { message, _ in message })
        let services = ServiceGroup(
            configuration: .init(
                services: [.init(service: server), .init(service: FileWatchService(watching: [server]))], logger: logger
            ))
        let task = Task { try await services.run() }
        let address = try await server.listeningAddress()
        return RunningServer(server: server, services: services, task: task, port: try #require(address.port))
    }

    public func clientConfiguration(
        _ identity: TLSIdentity, trust: TrustAnchors, serverName: String? = "localhost",
        framing: Framing = .lines
    ) -> MessageClientConfiguration {
        MessageClientConfiguration(
            host: "127.0.0.1", port: port, serverName: serverName, identity: identity, trust: trust,
            framing: framing, timeout: .seconds(10))
    }

    public func stop() async throws {
        await services.triggerGracefulShutdown()
        try await task.value
    }
}

/// The `SecureChannelError` code a throwing body produced, or nil.
public func channelErrorCode(_ body: () async throws -> Void) async -> SecureChannelError.Code? {
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
public final class LogCapture: Sendable {
    /// An empty capture.
    public init() {}

    private let lines = NIOLockedValueBox<[String]>([])

    /// A handler writing into this capture.
    public var handler: some LogHandler { Handler(capture: self) }

    /// Every line so far.
    public var all: [String] { lines.withLockedValue { $0 } }

    /// Waits (polling, at most `timeout` seconds) for a line that satisfies `predicate`; returns it or nil.
    public func waitForLine(timeout: Double = 10, _ predicate: (String) -> Bool) async -> String? {
        let deadline = Date() + timeout
        while Date() < deadline {
            if let line = all.first(where: predicate) { return line }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return all.first(where: predicate)
    }

    /// Waits (polling, at most `timeout` seconds) until `atLeast` lines contain `part`; returns the count.
    public func waitForCount(of part: String, atLeast: Int, timeout: Double) async -> Int {
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
