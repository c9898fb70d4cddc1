import NIOCore
import NIOPosix
import SecureChannel

/// Where plaintext goes (tunnel server) or comes from (tunnel client): SecureChannel's ``SocketEndpoint``.
public typealias TunnelEndpoint = SocketEndpoint

extension SocketEndpoint {
    /// Connects on `eventLoop` (so that the two sides of a tunnel share one loop).
    func connect(on eventLoop: any EventLoop, timeout: TimeAmount, halfClosure: Bool) async throws -> any Channel {
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelOption(.allowRemoteHalfClosure, value: halfClosure)
            .channelOption(.autoRead, value: false)
        do {
            switch self {
            case .tcp(let host, let port): return try await bootstrap.connect(host: host, port: port).get()
            case .unix(let path): return try await bootstrap.connect(unixDomainSocketPath: path).get()
            }
        } catch {
            throw SecureChannelError(.connectionFailed, "cannot reach \(self): \(SocketErrorText.connect(error))")
        }
    }
}

enum TunnelText {
    static func bytes(toTarget: Int, toClient: Int) -> String {
        "\(toTarget) bytes to target, \(toClient) bytes back"
    }
}
