import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import Synchronization
import X509

/// What one connection learned and how it ended; shared between its handlers and its task.
package final class ConnectionRecord: Sendable {
    private struct State {
        var identity: PeerIdentity?
        var certificate: Certificate?
        var chain: [Certificate] = []
        var cipher: UInt16?
        var group: UInt16?
        var tlsVersion: TLSVersion?
        var closeReason: String?
        var verificationFailure: String?
        var tlsFailed = false
        var busy = false
        var draining = false
        var handshake: EventLoopFuture<Void>?
        var traffic: (@Sendable () -> String)?
        var messages = 0
        var refusal: RefusalReason?
        var remote: String
    }

    private let state: NIOLockedValueBox<State>
    /// The peer's address, as text: the TCP peer, or the client a PROXY protocol header named.
    package var remote: String {
        get { state.withLockedValue { $0.remote } }
        set { state.withLockedValue { $0.remote = newValue } }
    }
    /// Completes when the TLS handshake (with verification) succeeded; fails otherwise. Set at pipeline setup.
    package var handshake: EventLoopFuture<Void>? {
        get { state.withLockedValue { $0.handshake } }
        set { state.withLockedValue { $0.handshake = newValue } }
    }
    /// When the connection was accepted.
    package let started = Date()
    /// When the connection was accepted, on the monotonic clock (for durations).
    package let acceptedAt = NIODeadline.now()

    package init(remote: SocketAddress?) {
        state = NIOLockedValueBox(State(remote: Self.display(remote)))
    }

    /// `1.2.3.4:5`, `[::1]:5`, or `unknown`.
    package static func display(_ address: SocketAddress?) -> String {
        if let address, let ip = address.ipAddress, let port = address.port {
            return address.protocol == .inet6 ? "[\(ip)]:\(port)" : "\(ip):\(port)"
        }
        return address.map { "\($0)" } ?? "unknown"
    }

    /// Why the connection was refused, if it was (the first reason recorded wins).
    package var refusal: RefusalReason? { state.withLockedValue { $0.refusal } }

    package func noteRefusal(_ reason: RefusalReason) {
        state.withLockedValue { if $0.refusal == nil { $0.refusal = reason } }
    }

    /// Bytes read from and written to the socket so far.
    package var wireBytes: (received: Int, sent: Int) {
        (bytesIn.load(ordering: .relaxed), bytesOut.load(ordering: .relaxed))
    }

    /// Counted on the connection's event loop for every read and write: an atomic add, not the record's lock.
    private let bytesIn = Atomic<Int>(0)
    private let bytesOut = Atomic<Int>(0)

    func countWire(received: Int) { bytesIn.wrappingAdd(received, ordering: .relaxed) }
    func countWire(sent: Int) { bytesOut.wrappingAdd(sent, ordering: .relaxed) }

    package var identity: PeerIdentity? {
        get { state.withLockedValue { $0.identity } }
        set { state.withLockedValue { $0.identity = newValue } }
    }

    /// The peer's validated chain, leaf first (for revocation sweeps of intermediates).
    package var chain: [Certificate] {
        get { state.withLockedValue { $0.chain } }
        set { state.withLockedValue { $0.chain = newValue } }
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

    /// Whether the TLS layer reported an error (a failed handshake, a bad record): its close then carries an alert.
    package var tlsFailed: Bool {
        get { state.withLockedValue { $0.tlsFailed } }
        set { state.withLockedValue { $0.tlsFailed = newValue } }
    }

    package var verificationFailure: String? {
        get { state.withLockedValue { $0.verificationFailure } }
        set { state.withLockedValue { $0.verificationFailure = newValue } }
    }

    package var busy: Bool {
        get { state.withLockedValue { $0.busy } }
        set { state.withLockedValue { $0.busy = newValue } }
    }

    /// A reply begins: marks the connection busy (a graceful shutdown lets the reply finish); false, and nothing
    /// marked, while the peer is not verified (a resumed session).
    package func beginReply() -> Bool {
        state.withLockedValue { state in
            if case .none = state.identity { return false }  // not `!= nil`: that copies the identity
            state.busy = true
            return true
        }
    }

    /// The reply is written: counts the message and clears the busy mark. True when the server is shutting down:
    /// the connection then closes after this reply.
    package func endReply() -> Bool {
        state.withLockedValue { state in
            state.busy = false
            state.messages += 1
            return state.draining
        }
    }

    /// The server begins to shut down: true when no reply is in flight (the connection can close now); otherwise
    /// the reply's ``endReply()`` says so and the connection closes after it. One lock for both sides: a reply
    /// cannot slip between the two.
    package func beginDraining() -> Bool {
        state.withLockedValue { state in
            state.draining = true
            return !state.busy
        }
    }

    /// What moved, for the end-of-connection log line (the tunnel's bytes each way); default: messages.
    package var traffic: String? {
        state.withLockedValue { $0.traffic }?()
    }

    /// Sets what ``traffic`` says, read when the end is logged (a tunnel's byte counts, final by then).
    package func describeTraffic(_ describe: @escaping @Sendable () -> String) {
        state.withLockedValue { $0.traffic = describe }
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
