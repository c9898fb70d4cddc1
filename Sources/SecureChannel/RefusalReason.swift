/// Why a connection was refused before it carried any traffic: the `reason` label of
/// `securechannel_connections_refused_total` and the `refusal` field of JSON logs. The raw values are stable.
public enum RefusalReason: String, Sendable, CaseIterable {
    /// The client sent no certificate.
    case noCertificate = "no_certificate"
    /// The certificate does not chain to the configured CA (unknown issuer, bad signature, invalid chain).
    case unknownCA = "unknown_ca"
    /// The certificate is expired or not yet valid.
    case expired
    /// The certificate is revoked (or no usable CRL is loaded: fail closed).
    case revoked
    /// The certificate is valid but the access rules do not allow it.
    case notAllowed = "not_allowed"
    /// The certificate is unusable for other reasons (wrong purpose, unreadable, chain too long).
    case badCertificate = "bad_certificate"
    /// The handshake did not finish within the handshake timeout.
    case handshakeTimeout = "handshake_timeout"
    /// Over the connection limit, or the server is shutting down.
    case limit
    /// `--accept-proxy-protocol` is on and the connection did not start with a valid PROXY protocol v2 header.
    case proxyProtocol = "proxy_protocol"
    /// The handshake failed otherwise: old TLS version, no common cipher, not TLS at all, peer went away.
    case handshakeFailed = "handshake_failed"
}
