import NIOCore

/// How often and how patiently ``ReconnectingClient`` tries again.
public struct RetryPolicy: Sendable, Hashable {
    /// Further attempts after the first one fails (0: no retry).
    public var retries: Int
    /// Wait before the first retry; each further wait doubles, up to ``maximumDelay``, with up to 25 % jitter.
    public var initialDelay: Duration
    /// The longest wait between two attempts.
    public var maximumDelay: Duration

    /// `retries` further attempts, waiting 0.2 s, 0.4 s, 0.8 s … at most 5 s between them.
    public init(retries: Int, initialDelay: Duration = .milliseconds(200), maximumDelay: Duration = .seconds(5)) {
        self.retries = retries
        self.initialDelay = initialDelay
        self.maximumDelay = maximumDelay
    }

    /// The wait before retry number `attempt` (1-based), without jitter.
    public func delay(before attempt: Int) -> Duration {
        var delay = initialDelay
        for _ in 1..<max(1, attempt) where delay < maximumDelay { delay *= 2 }
        return min(delay, maximumDelay)
    }

    /// Whether an error may go away by itself (a server restarting, a connection cut), as opposed to one that
    /// will not (a rejected certificate, a message too long, a configuration mistake).
    public static func isTransient(_ error: any Error) -> Bool {
        guard let error = error as? SecureChannelError else { return false }
        switch error.code {
        case .connectionFailed, .connectionClosed, .timeout, .handshakeFailed: return true
        default: return false
        }
    }
}

/// A ``MessageClient`` that reconnects: when the connection fails or breaks before a reply arrives, it waits
/// (exponential backoff with jitter), connects again and sends the same message again.
///
/// Delivery is at least once: a message whose reply was lost with the connection is sent again, so the server
/// may process it twice. Certificate rejections and other permanent errors are not retried.
public actor ReconnectingClient {
    /// Where to connect and as whom.
    public let configuration: MessageClientConfiguration
    /// How to retry.
    public let policy: RetryPolicy
    private let onRetry: @Sendable (_ attempt: Int, _ delay: Duration, _ error: any Error) -> Void
    private var client: MessageClient?

    /// A client that connects on first use. `onRetry` is told about each retry before its wait (for a log line).
    public init(
        configuration: MessageClientConfiguration, policy: RetryPolicy,
        onRetry: @escaping @Sendable (_ attempt: Int, _ delay: Duration, _ error: any Error) -> Void = { _, _, _ in }
    ) {
        self.configuration = configuration
        self.policy = policy
        self.onRetry = onRetry
    }

    /// Connects now (retrying as configured), so that a bad address or certificate shows before any message.
    public func connect() async throws {
        _ = try await withRetries { try await self.connected() }
    }

    /// Sends `message` and returns its reply, reconnecting and resending as the policy allows.
    public func send(_ message: String) async throws -> String {
        try await withRetries { try await self.connected().send(message) }
    }

    /// Closes the current connection, if any.
    public func close() async {
        await client?.close()
        client = nil
    }

    private func connected() async throws -> MessageClient {
        if let client { return client }
        let fresh = try await MessageClient.connect(configuration)
        client = fresh
        return fresh
    }

    private func withRetries<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        var attempt = 0
        while true {
            do {
                return try await body()
            } catch {
                await client?.close()
                client = nil
                attempt += 1
                guard attempt <= policy.retries, RetryPolicy.isTransient(error) else { throw error }
                let base = policy.delay(before: attempt)
                let delay = base + base * Double.random(in: 0...0.25)
                onRetry(attempt, delay, error)
                try await Task.sleep(for: delay)
            }
        }
    }
}
