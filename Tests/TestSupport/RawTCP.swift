import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A blocking TCP socket to 127.0.0.1 for tests that must misbehave below TLS: raw bytes, half-open
/// handshakes, resets.
public final class RawTCP: @unchecked Sendable {
    private var fd: Int32
    /// Our side's port: the server logs it as `127.0.0.1:PORT`.
    public let localPort: Int

    /// Connects to 127.0.0.1:`port`; reads give up after `receiveTimeout` seconds.
    public init(port: Int, receiveTimeout: Double = 5) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw RawTCPError(what: "socket()") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            Glibc.close(fd)
            throw RawTCPError(what: "connect() to port \(port): errno \(errno)")
        }
        var timeout = timeval(
            tv_sec: Int(receiveTimeout), tv_usec: Int((receiveTimeout - Double(Int(receiveTimeout))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var local = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.fd = fd
        localPort = Int(UInt16(bigEndian: local.sin_port))
    }

    /// Connects `count` sockets on a thread of its own (see ``receiveAll(limit:)`` for why not on the pool).
    public static func connect(port: Int, count: Int = 1, receiveTimeout: Double = 5) async throws -> [RawTCP] {
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(
                    with: Result { try (0..<count).map { _ in try RawTCP(port: port, receiveTimeout: receiveTimeout) } }
                )
            }.start()
        }
    }

    /// One socket, connected off the cooperative pool.
    public static func connect(port: Int, receiveTimeout: Double = 5) async throws -> RawTCP {
        try await connect(port: port, count: 1, receiveTimeout: receiveTimeout)[0]
    }

    deinit {
        if fd >= 0 { Glibc.close(fd) }
    }

    /// Writes all of `bytes`.
    public func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            guard written > 0 else { throw RawTCPError(what: "send(): errno \(errno)") }
            offset += written
        }
    }

    /// What the peer sends until it closes, resets, or `receiveTimeout` passes with nothing new. The blocking
    /// reads run on a thread of their own: blocking Swift's cooperative pool would stall the server under test,
    /// whose certificate verification runs there.
    public func receiveAll(limit: Int = 1 << 20) async -> (bytes: [UInt8], ended: Bool) {
        await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: self.receiveAllBlocking(limit: limit)) }.start()
        }
    }

    private func receiveAllBlocking(limit: Int) -> (bytes: [UInt8], ended: Bool) {
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16_384)
        while received.count < limit {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                received += chunk[..<count]
            } else {
                return (received, count == 0 || errno == ECONNRESET)
            }
        }
        return (received, false)
    }

    /// Closes with a TCP reset (SO_LINGER 0) instead of a FIN.
    public func reset() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        Glibc.close(fd)
        fd = -1
    }

    /// Closes normally (FIN).
    public func close() {
        Glibc.close(fd)
        fd = -1
    }

    /// A TLS record carrying a ClientHello that offers only `version` (0x0300 SSLv3, 0x0301 TLS 1.0, 0x0302
    /// TLS 1.1) and one CBC suite, as an old client would send it.
    public static func legacyClientHello(version: UInt16) -> [UInt8] {
        var body: [UInt8] = [UInt8(version >> 8), UInt8(version & 0xFF)]
        body += (0..<32).map { _ in UInt8.random(in: 0...255) }  // random
        body += [0]  // no session id
        body += [0, 2, 0x00, 0x2F]  // TLS_RSA_WITH_AES_128_CBC_SHA
        body += [1, 0]  // null compression
        let handshake: [UInt8] = [1, 0, UInt8(body.count >> 8), UInt8(body.count & 0xFF)] + body
        let recordVersion: UInt16 = version == 0x0300 ? 0x0300 : 0x0301
        return [
            0x16, UInt8(recordVersion >> 8), UInt8(recordVersion & 0xFF), UInt8(handshake.count >> 8),
            UInt8(handshake.count & 0xFF),
        ]
            + handshake
    }

    /// Raises this process's open-files soft limit to `wanted` (or the hard limit): floods need many sockets.
    public static func raiseFileLimit(to wanted: Int) {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        let target = min(rlim_t(wanted), limit.rlim_max)
        if limit.rlim_cur < target {
            limit.rlim_cur = target
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
    }

    /// Open file descriptors of this process.
    public static func openDescriptors() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
    }
}

/// A socket call failed.
public struct RawTCPError: Error, CustomStringConvertible {
    public var what: String
    public var description: String { what }
}

/// What `/proc` says about a process: for checks that a server gives back what a load took.
public enum ProcessStats {
    /// Open file descriptors of `pid`.
    public static func openDescriptors(_ pid: pid_t) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    /// Resident set size of `pid` in KiB.
    public static func residentKiB(_ pid: pid_t) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return -1 }
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1
    }
}
