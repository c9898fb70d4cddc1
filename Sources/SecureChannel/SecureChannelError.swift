/// The one error type of the `SecureChannel` module: a stable code and a one-line message that says what is
/// wrong and what to do.
public struct SecureChannelError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A stable identifier for the kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        enum Backing: String, Sendable {
            case configuration
            case connectionFailed = "connection-failed"
            case timeout
            case serverCertificateRejected = "server-certificate-rejected"
            case clientCertificateRejected = "client-certificate-rejected"
            case handshakeFailed = "handshake-failed"
            case connectionClosed = "connection-closed"
            case messageTooLong = "message-too-long"
            case expiredCRL = "expired-crl"
        }
        let backing: Backing
        /// The configuration is unusable (missing files, key not matching certificate, no access rule).
        public static let configuration = Code(backing: .configuration)
        /// The TCP connection could not be made (refused, unreachable).
        public static let connectionFailed = Code(backing: .connectionFailed)
        /// A connect, handshake or reply timeout passed.
        public static let timeout = Code(backing: .timeout)
        /// We did not accept the server's certificate (unknown CA, expired, name mismatch, ...).
        public static let serverCertificateRejected = Code(backing: .serverCertificateRejected)
        /// The server did not accept our client certificate.
        public static let clientCertificateRejected = Code(backing: .clientCertificateRejected)
        /// The TLS handshake failed for another reason (version, cipher, garbage).
        public static let handshakeFailed = Code(backing: .handshakeFailed)
        /// The peer closed the connection before replying.
        public static let connectionClosed = Code(backing: .connectionClosed)
        /// A message exceeds the configured maximum size.
        public static let messageTooLong = Code(backing: .messageTooLong)
        /// A CRL is past its nextUpdate and expired CRLs are not allowed (fail closed).
        public static let expiredCRL = Code(backing: .expiredCRL)
        /// The stable string form.
        public var description: String { backing.rawValue }
    }

    /// What kind of failure.
    public let code: Code
    /// One line: what is wrong and what to do.
    public let message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The message.
    public var description: String { message }
}
