import Foundation
import Logging
import SecureChannel
import ServiceLifecycle

/// Runs long-lived commands' services under one ServiceGroup: SIGTERM/SIGINT drain them gracefully, the metrics
/// endpoint (if any) starts first and stops last, and each announcement line is printed on stdout once its
/// service is bound (`listening on …`, which scripts wait for).
enum ServiceRunner {
    static func run(_ services: [any Service], metrics: PrometheusEndpoint?, format: LogFormat,
                    announcements: [@Sendable () async throws -> String]) async throws {
        // ServiceGroup stops services in reverse order: the metrics endpoint, listed first, stops last, so that
        // /healthz answers 503 during the whole drain.
        let all: [any Service] = (metrics.map { [$0] } ?? []) + services
        let group = ServiceGroup(configuration: .init(
            services: all.map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint],
            logger: format.makeLogger(label: "securechannel.lifecycle", level: .warning)))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            for announce in announcements {
                tasks.addTask { Console.out(try await announce()) }
            }
            if let metrics {
                tasks.addTask { Console.out("metrics on http://\(Endpoint.display(try await metrics.listeningAddress()))/metrics") }
            }
            try await tasks.waitForAll()
        }
    }
}
