import ArgumentParser
import Foundation
import Logging
import SecureChannel
import SecureChannelConfig
import SecureChannelEST
import SecureChannelMetrics
import ServiceLifecycle

/// `--renew-from`, `--crl-url`, `--crl-refresh` on `serve`, `tunnel server` and `tunnel client`.
struct OnlineCAOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Renew our certificate at this online CA ('ca serve') at two thirds of its lifetime, without a restart.",
            valueName: "url"))
    var renewFrom: String?

    @Option(
        help: ArgumentHelp(
            "Fetch and enforce this online CA's CRL; refused peers' connections are cut, a stale CRL fails closed.",
            valueName: "url"))
    var crlURL: String?

    @Option(
        help: ArgumentHelp("How often to fetch the CRL (default: 60s).", valueName: "time"),
        transform: TimeSpan.argument)
    var crlRefresh: TimeSpan?

    func apply(to fields: inout ConfigFields) {
        fields.set("renew-from", renewFrom)
        fields.set("crl-url", crlURL)
        fields.set("crl-refresh", crlRefresh.map { "\(Int($0.seconds))" })
    }
}

/// The renewal and CRL services of the ends that have online-CA keys.
struct OnlineCAWiring {
    private var refreshers: [String: CRLRefresher] = [:]
    private var keys: [String: OnlineCAKeys] = [:]
    let logger: Logger

    init(logger: Logger) { self.logger = logger }

    /// Before an end's material is loaded: its first CRL, so it never starts without one. A failed fetch is fatal
    /// unless a CRL fetched earlier is still there (then it is used, and enforced, until a fetch succeeds).
    mutating func prepare(_ name: String, _ keys: OnlineCAKeys?, metrics: PrometheusEndpoint?) async throws {
        guard let keys else { return }
        self.keys[name] = keys
        guard let url = keys.crlURL else { return }
        let refresher = try CRLRefresher(
            url: url, trustFile: keys.ca, crlFile: keys.crlFile, interval: keys.crlRefresh, logger: logger,
            metricsFactory: metrics?.factory)
        do {
            try await refresher.refresh()
        } catch {
            guard FileManager.default.fileExists(atPath: keys.crlFile) else {
                throw CLIError(
                    "cannot fetch the CRL from \(url) (\(error)); the end does not start without one: start the online CA first, or check --crl-url and --ca"
                )
            }
            logger.warning(
                "cannot fetch the CRL from \(url) (\(error)); enforcing the one fetched before (\(keys.crlFile))",
                metadata: ["event": "crl-refresh-failed"])
        }
        refreshers[name] = refresher
    }

    /// Once the end exists: its renewer and CRL refresher, reloading it.
    func services(_ name: String, for end: any MaterialReloading, metrics: PrometheusEndpoint?) throws
        -> [any Service]
    {
        guard let keys = keys[name] else { return [] }
        var services: [any Service] = []
        if let url = keys.renewFrom {
            services.append(
                try CertificateRenewer(
                    url: url,
                    files: TLSMaterialFiles(certificate: keys.certificate, key: keys.key, ca: keys.ca),
                    target: end, logger: logger, metricsFactory: metrics?.factory))
        }
        if let refresher = refreshers[name] {
            refresher.reloads(end)
            if let metrics { refresher.reportAge(to: metrics.factory) }
            services.append(refresher)
        }
        return services
    }
}
