import ServiceLifecycle

/// Something whose TLS material can be read again from its files: ``MessageServer``, the tunnel ends.
public protocol MaterialReloading: Sendable {
    /// Reads the files again; on failure keeps the current material and logs why. Returns whether the new
    /// material is in use.
    @discardableResult
    func reload(reason: String) -> Bool
    /// Whether a watched file changed since the last look or load.
    var watchedFilesChanged: Bool { get }
}

/// A `Service` that looks at the files of every listener and client in the process twice a second and reloads
/// the ones whose files changed (a renewal writing new certificates, an operator replacing a CRL). It runs beside
/// them in the application's service group; signals are the application's too (SIGHUP calls `reload`).
public struct FileWatchService: Service {
    private let watched: [any MaterialReloading]
    private let interval: Duration

    /// Watches `watched`, looking every `interval`.
    public init(watching watched: [any MaterialReloading], interval: Duration = .milliseconds(500)) {
        self.watched = watched
        self.interval = interval
    }

    /// Looks until graceful shutdown or cancellation.
    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: interval)
                for item in watched where item.watchedFilesChanged {
                    item.reload(reason: "files changed")
                }
            }
        }
    }
}
