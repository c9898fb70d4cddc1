import Foundation
import NIOCore
import NIOPosix
import SecureChannel
import SecureChannelPKI

/// Where plaintext goes (tunnel server) or comes from (tunnel client): a TCP host and port, or a UNIX socket.
public enum TunnelEndpoint: Sendable, Hashable, CustomStringConvertible {
    /// TCP.
    case tcp(host: String, port: Int)
    /// A UNIX domain socket path.
    case unix(path: String)

    /// `HOST:PORT`, `[V6]:PORT` or `unix:PATH`.
    public var description: String {
        switch self {
        case .tcp(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path): return "unix:\(path)"
        }
    }

    /// Whether the plaintext stays on this machine: a loopback address, `localhost`, or a UNIX socket.
    public var isLocal: Bool {
        switch self {
        case .unix: return true
        case .tcp(let host, _):
            if host == "localhost" { return true }
            guard let bytes = try? IssuanceRequest.ipBytes(host) else { return false }
            if bytes.count == 4 { return bytes[0] == 127 }
            return bytes == [UInt8](repeating: 0, count: 15) + [1]
        }
    }

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
            throw SecureChannelError(.connectionFailed, "cannot reach \(self): \(TunnelText.connect(error))")
        }
    }
}

enum TunnelText {
    static func connect(_ error: any Error) -> String {
        let text = "\(error)"
        if text.contains("Connection refused") || (error as? IOError)?.errnoCode == ECONNREFUSED { return "connection refused" }
        if text.contains("connectTimeout") || text.contains("timed out") { return "timed out" }
        if text.contains("No such file") { return "no such socket" }
        return text
    }

    static func bytes(toTarget: Int, toClient: Int) -> String {
        "\(toTarget) bytes to target, \(toClient) bytes back"
    }
}
