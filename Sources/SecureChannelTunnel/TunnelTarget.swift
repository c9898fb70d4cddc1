import NIOCore
import NIOPosix
import SecureChannel

/// Where plaintext goes (tunnel server) or comes from (tunnel client): SecureChannel's ``SocketEndpoint``.
public typealias TunnelEndpoint = SocketEndpoint

extension SocketEndpoint {
    /// Connects on `eventLoop` (so that the two sides of a tunnel share one loop); a failure is a
    /// ``SecureChannelError`` saying what could not be reached and why.
    func connect(on eventLoop: any EventLoop, timeout: TimeAmount, halfClosure: Bool) -> EventLoopFuture<any Channel> {
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelOption(.allowRemoteHalfClosure, value: halfClosure)
            .channelOption(.autoRead, value: false)
        let connected: EventLoopFuture<any Channel>
        switch self {
        case .tcp(let host, let port): connected = bootstrap.connect(addressOrName: host, port: port)
        case .unix(let path): connected = bootstrap.connect(unixDomainSocketPath: path)
        }
        return connected.flatMapErrorThrowing { error in
            throw SecureChannelError(.connectionFailed, "cannot reach \(self): \(SocketErrorText.connect(error))")
        }
    }
}

enum TunnelText {
    static func bytes(toTarget: Int, toClient: Int) -> String {
        "\(toTarget) bytes to target, \(toClient) bytes back"
    }
}
