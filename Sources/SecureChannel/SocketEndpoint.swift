import NIOCore
import NIOPosix
import SecureChannelPKI

/// A place to listen on or connect to: a TCP host and port, or a UNIX domain socket. The one `HOST:PORT` parser
/// and formatter of SecureChannel (IPv6 in brackets: `[::1]:8443`).
public enum SocketEndpoint: Sendable, Hashable, CustomStringConvertible {
    /// TCP.
    case tcp(host: String, port: Int)
    /// A UNIX domain socket path.
    case unix(path: String)

    /// Parses `HOST:PORT`, `[V6]:PORT` or, when `allowUnix`, `unix:/path`; throws a one-line error saying the
    /// expected form.
    public static func parse(_ text: String, allowUnix: Bool = false) throws -> SocketEndpoint {
        if allowUnix, text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard !path.isEmpty else {
                throw SecureChannelError(.configuration, "'\(text)' names no socket path; write unix:/path/to.sock")
            }
            return .unix(path: path)
        }
        let form = allowUnix ? "HOST:PORT or unix:/path" : "HOST:PORT"
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw SecureChannelError(.configuration, "'\(text)' is not \(form); write IPv6 as [::1]:8443")
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                throw SecureChannelError(.configuration, "'\(text)' is not \(form), e.g. 127.0.0.1:8443")
            }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") {
                throw SecureChannelError(
                    .configuration, "'\(text)' is not \(form); write IPv6 in brackets, e.g. [::1]:8443")
            }
        }
        guard !host.isEmpty else {
            throw SecureChannelError(
                .configuration, "'\(text)' is not \(form): the host is missing, e.g. 127.0.0.1:8443")
        }
        guard let port = Int(portText), (0...65535).contains(port) else {
            throw SecureChannelError(.configuration, "'\(text)' is not \(form) with a port from 0 to 65535")
        }
        return .tcp(host: String(host), port: port)
    }

    /// `HOST:PORT`, `[V6]:PORT` or `unix:PATH`.
    public var description: String {
        switch self {
        case .tcp(let host, let port): return Self.format(host: host, port: port)
        case .unix(let path): return "unix:\(path)"
        }
    }

    /// `HOST:PORT`, with an IPv6 host in brackets.
    public static func format(host: String, port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// Whether the endpoint stays on this machine: a loopback address, `localhost`, or a UNIX socket.
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
}

extension ClientBootstrap {
    /// Connects to `host`: an IP address directly, a name through NIO's resolver (getaddrinfo, then Happy Eyeballs
    /// over its answers). The resolver's round costs a connection to an address CPU for nothing.
    package func connect(addressOrName host: String, port: Int) -> EventLoopFuture<any Channel> {
        if let address = try? SocketAddress(ipAddress: host, port: port) {
            return connect(to: address)
        }
        return connect(host: host, port: port)
    }
}
