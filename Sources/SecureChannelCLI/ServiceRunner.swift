import Foundation
import Logging
import SecureChannel
import SecureChannelMetrics
import ServiceLifecycle
import UnixSignals

/// Runs long-lived commands' services under one ServiceGroup. The application owns the signals: SIGTERM/SIGINT
/// drain every service gracefully, SIGHUP reloads every listener and client in the process, and a
/// ``FileWatchService`` beside them reloads the ones whose files changed. The metrics endpoint (if any) starts
/// first and stops last. The `listening on …` lines (which scripts wait for) are printed only once everything the
/// process serves is bound, metrics included; if any bind fails, none is printed and the command exits 1.
enum ServiceRunner {
    /// One listener or client: the service, what to print once it is bound, and its reload.
    struct Entry: Sendable {
        var service: any Service & MaterialReloading
        var announce: @Sendable () async throws -> String
    }

    static func run(
        _ entries: [Entry], extras: [any Service] = [], metrics: PrometheusEndpoint?, format: LogFormat, logger: Logger
    ) async throws {
        let reloadable = entries.map(\.service)
        // Trapped before anything binds, so a SIGHUP sent as soon as `listening on` shows is never fatal.
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        let watcher = FileWatchService(watching: reloadable)
        let reloader = HangupReloader(signals: hangups, targets: reloadable, logger: logger)
        // ServiceGroup stops services in reverse order: the metrics endpoint, listed first, stops last, so that
        // /healthz answers 503 during the whole drain.
        // Renewal and CRL services (`--renew-from`, `--crl-url`) beside their listeners; stopped first.
        let all: [any Service] = (metrics.map { [$0] } ?? []) + entries.map(\.service) + [watcher, reloader] + extras
        let group = ServiceGroup(
            configuration: .init(
                services: all.map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint],
                logger: format.makeLogger(label: "securechannel.lifecycle", level: .warning)))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            tasks.addTask {
                // Every bind first, then every line: a script waiting for the line is never fooled.
                var lines: [String] = []
                for entry in entries { lines.append(try await entry.announce()) }
                if let metrics {
                    lines.append("metrics on http://\(Endpoint.display(try await metrics.listeningAddress()))/metrics")
                }
                for line in lines { Console.out(line) }
            }
            try await tasks.waitForAll()
        }
    }
}

/// Maps SIGHUP to a reload of every listener and client in the process.
struct HangupReloader: Service {
    let signals: UnixSignalsSequence
    let targets: [any MaterialReloading]
    let logger: Logger

    func run() async throws {
        for await _ in signals.cancelOnGracefulShutdown() {
            for target in targets { target.reload(reason: "SIGHUP") }
        }
    }
}
