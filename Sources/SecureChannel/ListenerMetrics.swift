import CoreMetrics
import Foundation
import NIOConcurrencyHelpers

/// The metrics of one accepting side (a `serve` process or one tunnel server), through swift-metrics.
///
/// Names (Prometheus), each with a `listener` label naming the server or tunnel:
/// - `securechannel_connections_accepted_total`: TCP connections accepted (before TLS)
/// - `securechannel_connections_verified_total`: connections whose client passed verification and rules
/// - `securechannel_connections_open`: connections being served now
/// - `securechannel_connections_refused_total{reason=…}`: see ``RefusalReason``
/// - `securechannel_handshake_duration_seconds`: accept to verified handshake (histogram)
/// - `securechannel_bytes_received_total`, `securechannel_bytes_sent_total`: bytes on the wire (TLS records)
/// - `securechannel_messages_total`: messages answered (the message server)
/// - `securechannel_reloads_total`, `securechannel_reload_failures_total`
/// - `securechannel_certificate_expiry_seconds{certificate="server"|"client"|"ca"}`: seconds until notAfter of our
///   certificate (a tunnel client's is `client`) and of the earliest-expiring CA
/// - `securechannel_crl_next_update_seconds`: seconds until the earliest loaded CRL's nextUpdate (only with CRLs)
package final class ListenerMetrics: Sendable {
    package let accepted: Counter
    package let verified: Counter
    package let open: Meter
    package let refused: [RefusalReason: Counter]
    package let handshakeDuration: CoreMetrics.Timer
    package let bytesReceived: Counter
    package let bytesSent: Counter
    let messages: Counter
    package let reloads: Counter
    package let reloadFailures: Counter
    let serverExpiry: Gauge
    let caExpiry: Gauge
    private let crlNextUpdate: NIOLockedValueBox<Gauge?>
    private let factory: any MetricsFactory
    private let listener: String

    /// Metric objects for the listener named `listener`, made by `factory` (default: the process-wide
    /// `MetricsSystem.factory`, a no-op unless bootstrapped). `role` labels our own certificate's expiry gauge
    /// (`server` for servers, `client` for a tunnel client).
    package init(listener: String, factory: (any MetricsFactory)?, role: String = "server") {
        let factory = factory ?? MetricsSystem.factory
        let labels = [("listener", listener)]
        func counter(_ name: String, _ extra: [(String, String)] = []) -> Counter {
            Counter(label: "securechannel_\(name)", dimensions: labels + extra, factory: factory)
        }
        accepted = counter("connections_accepted_total")
        verified = counter("connections_verified_total")
        open = Meter(label: "securechannel_connections_open", dimensions: labels, factory: factory)
        refused = Dictionary(
            uniqueKeysWithValues: RefusalReason.allCases.map {
                ($0, counter("connections_refused_total", [("reason", $0.rawValue)]))
            })
        handshakeDuration = CoreMetrics.Timer(label: Self.handshakeLabel, dimensions: labels, factory: factory)
        bytesReceived = counter("bytes_received_total")
        bytesSent = counter("bytes_sent_total")
        messages = counter("messages_total")
        reloads = counter("reloads_total")
        reloadFailures = counter("reload_failures_total")
        serverExpiry = Gauge(label: Self.expiryLabel, dimensions: labels + [("certificate", role)], factory: factory)
        caExpiry = Gauge(label: Self.expiryLabel, dimensions: labels + [("certificate", "ca")], factory: factory)
        crlNextUpdate = NIOLockedValueBox(nil)
        self.factory = factory
        self.listener = listener
    }

    /// The handshake histogram's label (its buckets are set by ``PrometheusEndpoint``).
    package static let handshakeLabel = "securechannel_handshake_duration_seconds"
    static let expiryLabel = "securechannel_certificate_expiry_seconds"

    /// Sets the expiry gauges from the material in use.
    package func noteExpiry(_ material: TLSMaterial, now: Date = Date()) {
        serverExpiry.record(material.identity.leaf.notValidAfter.timeIntervalSince(now))
        if let earliest = material.trust.certificates.map(\.notValidAfter).min() {
            caExpiry.record(earliest.timeIntervalSince(now))
        }
        let nextUpdate = material.revocation?.crls.compactMap(\.nextUpdate).min()
        guard let nextUpdate else { return }
        let gauge = crlNextUpdate.withLockedValue { gauge in
            if gauge == nil {
                gauge = Gauge(
                    label: "securechannel_crl_next_update_seconds", dimensions: [("listener", listener)],
                    factory: factory)
            }
            return gauge!
        }
        gauge.record(nextUpdate.timeIntervalSince(now))
    }
}
