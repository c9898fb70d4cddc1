/// The one error type of `SecureChannelPKI`.
///
/// `message` is a single line that says what is wrong and what to do about it; `code` is stable, so
/// scripts and the CLI can branch on it without parsing text.
public struct PKIError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A stable identifier for the kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        enum Backing: String, Sendable {
            case invalidArgument = "invalid-argument"
            case fileNotFound = "file-not-found"
            case fileExists = "file-exists"
            case io = "io"
            case malformedInput = "malformed-input"
            case keyMismatch = "key-mismatch"
            case passphraseRequired = "passphrase-required"
            case wrongPassphrase = "wrong-passphrase"
            case unsupported = "unsupported"
            case verificationFailed = "verification-failed"
            case notFound = "not-found"
            case revokedKey = "revoked-key"
            case outsideDirectory = "outside-directory"
            case store = "store"
            case tokenRefused = "token-refused"
            case renewalRefused = "renewal-refused"
        }

        let backing: Backing

        /// A bad flag value: unknown key type, invalid DNS name or IP address, days out of range.
        public static let invalidArgument = Code(backing: .invalidArgument)
        /// A file or directory that should exist does not.
        public static let fileNotFound = Code(backing: .fileNotFound)
        /// A file that must not be overwritten already exists.
        public static let fileExists = Code(backing: .fileExists)
        /// Reading or writing a file failed.
        public static let io = Code(backing: .io)
        /// A file is not valid PEM/DER or does not hold what was expected.
        public static let malformedInput = Code(backing: .malformedInput)
        /// A private key does not belong to its certificate.
        public static let keyMismatch = Code(backing: .keyMismatch)
        /// An encrypted key was found and no passphrase was given.
        public static let passphraseRequired = Code(backing: .passphraseRequired)
        /// The passphrase does not decrypt the key.
        public static let wrongPassphrase = Code(backing: .wrongPassphrase)
        /// A well-formed input that SecureChannel does not support.
        public static let unsupported = Code(backing: .unsupported)
        /// A certificate failed verification.
        public static let verificationFailed = Code(backing: .verificationFailed)
        /// A named item (certificate in the inventory) does not exist.
        public static let notFound = Code(backing: .notFound)
        /// The public key belongs to a revoked certificate: it is never certified again.
        public static let revokedKey = Code(backing: .revokedKey)
        /// A write would land outside the CA directory and no `--out` asked for it.
        public static let outsideDirectory = Code(backing: .outsideDirectory)
        /// The CA store (SQLite file or PostgreSQL server) could not be opened or failed a statement.
        public static let store = Code(backing: .store)
        /// An enrollment token is unknown, used, expired, or does not allow what the request asks for.
        public static let tokenRefused = Code(backing: .tokenRefused)
        /// A certificate may not renew: revoked, expired, not issued by this CA, or the request differs from it.
        public static let renewalRefused = Code(backing: .renewalRefused)

        /// The stable string form, e.g. `key-mismatch`.
        public var description: String { backing.rawValue }
    }

    /// What kind of failure this is.
    public let code: Code
    /// One line: what is wrong and what to do.
    public let message: String

    /// Creates an error with a code and a one-line message.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The message, as shown to users.
    public var description: String { message }

    static func invalidArgument(_ message: String) -> PKIError { PKIError(.invalidArgument, message) }
    static func malformed(_ message: String) -> PKIError { PKIError(.malformedInput, message) }
}
