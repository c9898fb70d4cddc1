import Foundation
import Logging
import NIOCore

/// The per-connection log lines and their metrics: one line when a peer is verified, one when a connection ends.
extension Acceptor {
    /// The peer as log lines name it: `1.2.3.4:5`, with ` to HOST:PORT` on a tunnel client.
    func peerText(_ record: ConnectionRecord) -> String {
        guard let destination = settings.destination else { return record.remote }
        return "\(record.remote == "unknown" ? "a local client" : record.remote) to \(destination)"
    }

    /// Logs and counts a verified peer (the server verified by a tunnel client's body, or a client here).
    package func logConnected(_ record: ConnectionRecord, identity: PeerIdentity, resumed: Bool = false) {
        let session = record.session
        let handshakeNanoseconds = (NIODeadline.now() - record.acceptedAt).nanoseconds
        metrics.verified.increment()
        metrics.handshakeDuration.recordNanoseconds(handshakeNanoseconds)
        var metadata = Self.identityFields(identity, session: session).merging(
            [
                "event": "connected", "peer": "\(record.remote)",
                "handshake_duration": .stringConvertible(Double(handshakeNanoseconds) / 1e9),
            ]) { $1 }
        if let destination = settings.destination { metadata["target"] = "\(destination)" }
        logger.info(
            "connection from \(peerText(record)): verified \(identity), \(session.summary)\(resumed ? " (resumed session)" : "")",
            metadata: metadata)
    }

    package func logEnded(_ record: ConnectionRecord) {
        let reason = record.closeReason ?? "closed"
        let seconds = Date().timeIntervalSince(record.started)
        let who = terminatesTLS ? record.identity.map { " (\($0.subject))" } ?? "" : ""
        let traffic =
            record.traffic ?? (settings.destination == nil ? "\(record.messages) message(s)" : "nothing forwarded")
        let text =
            "connection from \(peerText(record))\(who) ended: \(reason); \(traffic), \(Self.threeDecimals(seconds)) s"
        let (received, sent) = record.wireBytes
        var metadata: Logger.Metadata = [
            "event": "ended", "peer": "\(record.remote)", "reason": "\(reason)",
            "messages": .stringConvertible(record.messages),
            "bytes_in": .stringConvertible(received), "bytes_out": .stringConvertible(sent),
            "duration": .stringConvertible((max(0, seconds) * 1000).rounded() / 1000),
        ]
        if let destination = settings.destination { metadata["target"] = "\(destination)" }
        if let identity = record.identity {
            metadata.merge(Self.identityFields(identity, session: record.session)) { $1 }
            logger.info("\(text)", metadata: metadata)
        } else if terminatesTLS, record.tlsVersion != nil, record.refusal == nil, !record.tlsFailed {
            // A finished handshake with no certificate and no refusal: a listener where the client certificate is
            // optional (`ca serve`: a first enrollment, `cacerts`, `crl`). Not a failure, not a refusal.
            metadata["client_certificate"] = "none"
            logger.info("\(text) (no client certificate)", metadata: metadata)
        } else {
            // A client we refused always has a reason; a tunnel client that could not reach its server may not.
            if let refusal = record.refusal ?? (terminatesTLS ? .handshakeFailed : nil) {
                metrics.refused[refusal]?.increment()
                metadata["refusal"] = "\(refusal.rawValue)"
            }
            logger.warning("\(text)", metadata: metadata)
        }
    }

    /// The stable JSON fields naming a verified peer and its session.
    static func identityFields(_ identity: PeerIdentity, session: SessionInfo) -> Logger.Metadata {
        var fields: Logger.Metadata = [
            "subject": "\(identity.subject)", "serial": "\(identity.serial)",
            "sans": "\(identity.alternativeNames.joined(separator: ","))",
            "tls_version": "\(session.tlsVersion)", "cipher": "\(session.cipherSuite)",
            "group": "\(session.keyExchangeGroup ?? "unknown")",
        ]
        if let id = identity.spiffeID { fields["spiffe_id"] = "\(id)" }
        return fields
    }

    /// `1.234`: seconds with three decimals, without `String(format:)` (this runs once per connection).
    static func threeDecimals(_ seconds: Double) -> String {
        let millis = Int((max(0, seconds) * 1000).rounded())
        let fraction = String(millis % 1000)
        return "\(millis / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }
}
