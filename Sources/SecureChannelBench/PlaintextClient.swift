import NIOCore
import NIOPosix
import SecureChannel

/// One connection of the load generator: an mTLS ``SecureChannel/MessageClient``, or a ``PlaintextClient``.
protocol BenchConnection: Sendable {
    /// The negotiated TLS parameters; nil for plaintext.
    var tlsSession: SessionInfo? { get }
    /// Sends one message and waits for its reply.
    func send(_ message: ByteBuffer) async throws -> ByteBuffer
    /// Sends a string and returns the reply as a string.
    func send(_ text: String) async throws -> String
    /// Closes the connection.
    func close() async
}

extension MessageClient: BenchConnection {
    var tlsSession: SessionInfo? { session }
}

/// Plain TCP with line framing, nothing authenticated: what `bench --plaintext` sends to the plaintext entrance of
/// a tunnel client or to the echo backend behind a tunnel. It lives here, not in `MessageClient`, which only
/// speaks mTLS.
struct PlaintextClient: BenchConnection {
    private let exchange: FramedExchange

    var tlsSession: SessionInfo? { nil }

    static func connect(
        host: String, port: Int, maximumMessageBytes: Int, timeout: TimeAmount,
        group: any EventLoopGroup
    ) async throws -> PlaintextClient {
        PlaintextClient(
            exchange: try await FramedExchange.connect(
                host: host, port: port, framing: .lines, maximumMessageBytes: maximumMessageBytes, timeout: timeout,
                record: ConnectionRecord(remote: nil), group: group))
    }

    func send(_ message: ByteBuffer) async throws -> ByteBuffer { try await exchange.send(message) }

    func send(_ text: String) async throws -> String { try await exchange.send(text) }

    func close() async { await exchange.close() }
}
