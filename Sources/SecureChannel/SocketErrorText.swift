import NIOCore
import NIOPosix

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Turns socket, resolver and bind errors into a few words people can act on, by the error's type and errno,
/// never by its English text.
package enum SocketErrorText {
    /// Why a bind failed: `address already in use`, `unknown host 'x'`, ...
    package static func bind(_ error: any Error) -> String {
        if let host = unknownHost(error) {
            return "unknown host '\(host)': not an address of this machine, nor a name that resolves"
        }
        if let error = error as? IOError {
            switch error.errnoCode {
            case EADDRINUSE: return "address already in use"
            case EACCES: return "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
            case EADDRNOTAVAIL: return "that address is not on this machine"
            default: return String(cString: strerror(error.errnoCode)).lowercased()
            }
        }
        if case SocketAddressError.unixDomainSocketPathTooLong = error { return "the socket path is too long" }
        return "\(error)"
    }

    /// Why a connect failed: `connection refused`, `timed out`, `unknown host 'x'`, `no such socket`; with `hints`,
    /// what to check.
    package static func connect(_ error: any Error, hints: Bool = false) -> String {
        if let host = unknownHost(error) { return "unknown host '\(host)'" + (hints ? " (check the name)" : "") }
        if let error = error as? NIOConnectionError, let first = error.connectionErrors.first {
            return connect(first.error, hints: hints)
        }
        if case ChannelError.connectTimeout = error {
            return "timed out" + (hints ? " (is the address reachable?)" : "")
        }
        if let error = error as? IOError {
            switch error.errnoCode {
            case ECONNREFUSED: return "connection refused" + (hints ? " (is the server running?)" : "")
            case ETIMEDOUT: return "timed out" + (hints ? " (is the address reachable?)" : "")
            case ENOENT: return "no such socket"
            case EHOSTUNREACH, ENETUNREACH: return "no route to the host"
            default: return String(cString: strerror(error.errnoCode)).lowercased()
            }
        }
        return "\(error)"
    }

    private static func unknownHost(_ error: any Error) -> String? {
        if let error = error as? SocketAddressError.UnknownHost { return error.host }
        if let error = error as? NIOConnectionError, error.dnsAError != nil || error.dnsAAAAError != nil,
            error.connectionErrors.isEmpty
        {
            return error.host
        }
        return nil
    }
}
