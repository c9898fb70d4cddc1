import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import X509

/// What one connection learned and how it ended; shared between its handlers and its task.
package final class ConnectionRecord: Sendable {
    private struct State {
        var identity: PeerIdentity?
        var certificate: Certificate?
        var cipher: UInt16?
        var group: UInt16?
        var tlsVersion: TLSVersion?
        var closeReason: String?
        var verificationFailure: String?
        var busy = false
        var handshake: EventLoopFuture<Void>?
        var traffic: String?
        var messages = 0
    }

    private let state = NIOLockedValueBox(State())
    /// The peer's address, as text.
    package let remote: String
    /// Completes when the TLS handshake (with verification) succeeded; fails otherwise. Set at pipeline setup.
    package var handshake: EventLoopFuture<Void>? {
        get { state.withLockedValue { $0.handshake } }
        set { state.withLockedValue { $0.handshake = newValue } }
    }
    /// When the connection was accepted.
    package let started = Date()

    package init(remote: SocketAddress?) {
        if let remote, let ip = remote.ipAddress, let port = remote.port {
            self.remote = remote.protocol == .inet6 ? "[\(ip)]:\(port)" : "\(ip):\(port)"
        } else {
            self.remote = remote.map { "\($0)" } ?? "unknown"
        }
    }

    package var identity: PeerIdentity? {
        get { state.withLockedValue { $0.identity } }
        set { state.withLockedValue { $0.identity = newValue } }
    }

    /// The peer's verified leaf certificate (for expiry and revocation sweeps).
    package var certificate: Certificate? {
        get { state.withLockedValue { $0.certificate } }
        set { state.withLockedValue { $0.certificate = newValue } }
    }

    package var tlsVersion: TLSVersion? {
        get { state.withLockedValue { $0.tlsVersion } }
        set { state.withLockedValue { $0.tlsVersion = newValue } }
    }

    /// The first reason recorded wins: it is the cause, later ones are consequences.
    package var closeReason: String? { state.withLockedValue { $0.closeReason } }

    package func noteClose(_ reason: String) {
        state.withLockedValue { if $0.closeReason == nil { $0.closeReason = reason } }
    }

    package var verificationFailure: String? {
        get { state.withLockedValue { $0.verificationFailure } }
        set { state.withLockedValue { $0.verificationFailure = newValue } }
    }

    package var busy: Bool {
        get { state.withLockedValue { $0.busy } }
        set { state.withLockedValue { $0.busy = newValue } }
    }

    /// What moved, for the end-of-connection log line (the tunnel's bytes each way); default: messages.
    package var traffic: String? {
        get { state.withLockedValue { $0.traffic } }
        set { state.withLockedValue { $0.traffic = newValue } }
    }

    package var messages: Int { state.withLockedValue { $0.messages } }

    package func countMessage() { state.withLockedValue { $0.messages += 1 } }

    func setNegotiated(cipher: UInt16, group: UInt16?) {
        state.withLockedValue {
            $0.cipher = cipher
            $0.group = group
        }
    }

    /// Negotiated parameters, once the handshake completed.
    package var session: SessionInfo {
        state.withLockedValue {
            SessionInfo(
                tlsVersion: $0.tlsVersion?.displayName ?? "unknown",
                cipherSuite: $0.cipher.map(TLSPolicy.cipherName) ?? "unknown",
                keyExchangeGroup: $0.group.map(TLSPolicy.groupName))
        }
    }
}

/// The negotiated TLS parameters of a connection.
public struct SessionInfo: Sendable, Hashable, Codable {
    /// `TLSv1.3` or `TLSv1.2`.
    public var tlsVersion: String
    /// IANA name of the cipher suite.
    public var cipherSuite: String
    /// The key-exchange group (`X25519MLKEM768`, `X25519`, `P-256`), when the ServerHello names it.
    public var keyExchangeGroup: String?

    /// `TLSv1.3 TLS_AES_128_GCM_SHA256 X25519MLKEM768`.
    public var summary: String {
        [tlsVersion, cipherSuite, keyExchangeGroup].compactMap { $0 }.joined(separator: " ")
    }
}
