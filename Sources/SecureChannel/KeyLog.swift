import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL

#if canImport(Glibc)
    import Glibc
#endif

/// TLS secrets written in the NSS key log format (`CLIENT_HANDSHAKE_TRAFFIC_SECRET …`, RFC 9850), so that
/// Wireshark or `tshark -o tls.keylog_file:FILE` can decrypt a capture of our own traffic. Off unless asked for:
/// anyone with the file can read everything it covers.
///
/// The file is opened once per path (mode 0600, appending, never truncated) and shared by every connection;
/// each line is one `write(2)` on an `O_APPEND` descriptor, so lines never interleave.
public final class KeyLog: Sendable {
    /// The path written to.
    public let path: String
    private let fd: Int32

    private static let open = NIOLockedValueBox<[String: KeyLog]>([:])

    /// The key log for `path`, opened (created 0600 if missing) on first use.
    public static func file(_ path: String) throws -> KeyLog {
        try open.withLockedValue { files in
            if let existing = files[path] { return existing }
            let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else {
                throw SecureChannelError(
                    .configuration,
                    "cannot open the key log \(path): \(String(cString: strerror(errno))); check the directory and its permissions"
                )
            }
            var info = stat()
            if fstat(fd, &info) == 0, info.st_mode & 0o077 != 0 { fchmod(fd, 0o600) }
            let log = KeyLog(path: path, fd: fd)
            files[path] = log
            return log
        }
    }

    private init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
    }

    /// The warning every side shows when it writes a key log.
    public var warning: String {
        "writing TLS secrets to \(path) (key log): anyone with this file can decrypt the traffic; use it for debugging only and delete it after"
    }

    /// The callback for NIOSSL.
    var callback: NIOSSLKeyLogCallback {
        { [fd] line in
            var bytes = Array(line.readableBytesView)
            bytes.append(0x0A)
            _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress!, $0.count) }
        }
    }
}

extension KeyLog: Hashable {
    public static func == (lhs: KeyLog, rhs: KeyLog) -> Bool { lhs.path == rhs.path }
    public func hash(into hasher: inout Hasher) { hasher.combine(path) }
}
