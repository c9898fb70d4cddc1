import NIOCore
import NIOSSL

/// Turns TLS and socket errors into one-line reasons people can act on.
package enum ErrorDescription {
    /// Alerts a server sends when it does not accept the client's certificate.
    static let certificateAlerts: [(String, String)] = [
        ("CERTIFICATE_REQUIRED", "it requires a client certificate"),
        ("UNKNOWN_CA", "unknown CA"),
        ("BAD_CERTIFICATE", "bad certificate"),
        ("CERTIFICATE_EXPIRED", "certificate expired"),
        ("CERTIFICATE_REVOKED", "certificate revoked"),
        ("UNSUPPORTED_CERTIFICATE", "unsupported certificate (wrong purpose?)"),
        ("CERTIFICATE_UNKNOWN", "certificate not accepted"),
        ("ACCESS_DENIED", "access denied by its rules"),
    ]

    /// The reason logged when a client sends no certificate.
    static let noClientCertificate = "handshake failed: no client certificate"

    static func text(_ error: any Error) -> String {
        if let error = error as? NIOSSLError, case .handshakeFailed(let inner) = error { return "\(inner)" }
        return "\(error)"
    }

    /// The reason for logs and errors.
    package static func describe(
        _ error: any Error, record: ConnectionRecord, handshakeCompleted: Bool,
        peer: String = "the peer"
    ) -> String {
        if let error = error as? SecureChannelError { return error.message }
        if let failure = record.verificationFailure { return failure }
        let text = text(error)
        if text.contains("PEER_DID_NOT_RETURN_A_CERTIFICATE") || text.contains("NO_CERTIFICATE") {
            return noClientCertificate
        }
        if text.contains("NO_RENEGOTIATION") || text.contains("RENEGOTIATION") {
            return "TLS renegotiation refused: this server never renegotiates (\(shortCode(text)))"
        }
        if text.contains("KEY_USAGE_BIT_INCORRECT") {
            return
                "handshake failed: the peer's certificate may not sign TLS handshakes (its keyUsage lacks digitalSignature; a CA certificate used as a client or server certificate?)"
        }
        if text.contains("HTTP_REQUEST") || text.contains("HTTPS_PROXY_REQUEST") {
            return "handshake failed: plaintext HTTP on the TLS port"
        }
        if text.contains("WRONG_VERSION_NUMBER") || text.contains("UNSUPPORTED_PROTOCOL")
            || text.contains("PROTOCOL_VERSION")
        {
            return "handshake failed: unsupported TLS version or not TLS at all (\(shortCode(text)))"
        }
        if text.contains("NO_SHARED_CIPHER") || text.contains("NO_SHARED_GROUP") || text.contains("HANDSHAKE_FAILURE") {
            return "handshake failed: no cipher suite or group in common (\(shortCode(text)))"
        }
        for (code, meaning) in certificateAlerts where text.contains(code) {
            return "\(peer) rejected our certificate: \(meaning)"
        }
        if let error = error as? NIOSSLError, case .uncleanShutdown = error {
            return handshakeCompleted
                ? "closed by peer without close_notify" : "handshake failed: peer closed the connection"
        }
        if let error = error as? IOError {
            return "connection error: \(error.description)"
        }
        if [
            "BAD_PACKET_LENGTH", "RECORD_TOO_LARGE", "DECODE_ERROR", "ENCRYPTED_LENGTH_TOO_LONG",
            "DATA_LENGTH_TOO_LONG",
        ].contains(where: text.contains) {
            return "handshake failed: garbage instead of TLS (\(shortCode(text)))"
        }
        return (handshakeCompleted ? "TLS error: " : "handshake failed: ") + shortCode(text)
    }

    /// Whether `error` is an alert by which the peer refused our certificate.
    static func isCertificateAlert(_ error: any Error) -> Bool {
        let text = text(error)
        return certificateAlerts.contains { text.contains($0.0) }
    }

    /// The error code for a handshake failure.
    static func code(_ error: any Error, record: ConnectionRecord) -> SecureChannelError.Code {
        if let error = error as? SecureChannelError { return error.code }
        if record.verificationFailure != nil { return .serverCertificateRejected }
        return isCertificateAlert(error) ? .clientCertificateRejected : .handshakeFailed
    }

    /// BoringSSL's reason names, e.g. `TLSV1_ALERT_UNKNOWN_CA`, without the numeric prefixes.
    static func shortCode(_ text: String) -> String {
        let names = text.split(whereSeparator: { !($0.isLetter || $0.isNumber || $0 == "_") })
            .filter { $0.count > 6 && $0.contains("_") && $0.uppercased() == $0 }
        let unique = names.reduce(into: [Substring]()) { if !$0.contains($1) { $0.append($1) } }
        return unique.isEmpty ? text : unique.joined(separator: ", ")
    }
}
