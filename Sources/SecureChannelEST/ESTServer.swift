import CoreMetrics
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import SecureChannel
import SecureChannelPKI
import ServiceLifecycle
import X509

/// `securechannel ca serve`: the online CA, speaking EST (RFC 7030) under `/.well-known/est/` on the same
/// ``Acceptor`` (limits, timeouts, reload, metrics) as `serve`. A client certificate is optional on this listener:
/// a first enrollment comes with a one-time token instead; a renewal comes with the certificate it renews.
///
/// - `GET cacerts`: the CA's chain up to the root, base64 certs-only PKCS#7.
/// - `POST simpleenroll`: a base64 PKCS#10 CSR, authorised by a token (HTTP Basic password, or Bearer).
/// - `POST simplereenroll`: a base64 PKCS#10 CSR, authorised by the client certificate of this connection.
/// - `GET crl` (not EST): the CA's current CRL, DER, signed again once it is older than ``ESTServerConfiguration/crlRefresh``.
///
/// Every refusal is a 4xx with a one-line body and a log line; every issuance is one audit log line.
public final class ESTServer: Service, MaterialReloading, Sendable {
    /// The configuration it was created with.
    public let configuration: ESTServerConfiguration
    private let authority: CertificateAuthority
    private let listener: Acceptor
    private let work: NIOThreadPool
    private let limiter: RequestLimiter
    private let crlCache = NIOLockedValueBox<(der: [UInt8], made: Date, stamp: String)?>(nil)
    private let counters: ESTMetrics
    private var logger: Logger { listener.logger }

    /// Creates the server over `authority` (the CA whose key signs); throws a one-line error for an unusable
    /// configuration or TLS material.
    public init(configuration: ESTServerConfiguration, authority: CertificateAuthority, logger: Logger) throws {
        self.configuration = configuration
        self.authority = authority
        // Renewals all day: commits in a write-ahead log while this process runs (the journal again at its end).
        authority.store.useWriteAheadLog()
        var settings = AcceptorSettings(
            listen: configuration.listen, handshakeTimeout: configuration.handshakeTimeout,
            idleTimeout: configuration.idleTimeout, maximumConnections: configuration.maximumConnections,
            shutdownGracePeriod: configuration.shutdownGracePeriod, expiryWarningDays: 7)
        settings.metricsLabel = "ca-serve"
        settings.metricsFactory = configuration.metricsFactory
        let store = try MaterialStore(
            files: configuration.files, role: .server(rules: .anyClient, clientCertificateOptional: true),
            tls: configuration.tls)
        listener = try Acceptor(
            settings: settings, store: store, logger: logger, group: MultiThreadedEventLoopGroup.singleton)
        // The CA's work (store transactions, signatures) blocks: it runs here, never on an event loop.
        work = NIOThreadPool(numberOfThreads: 2)
        work.start()
        limiter = RequestLimiter(perMinute: configuration.requestsPerMinute)
        counters = ESTMetrics(factory: configuration.metricsFactory)
    }

    deinit { work.shutdownGracefully { _ in } }

    /// The address, once bound (port 0 resolved to the real port).
    public func listeningAddress() async throws -> SocketAddress { try await listener.listeningAddress() }

    /// Reads the TLS files again (the listener's certificate, the CA bundle, CRLs); keeps the current ones on failure.
    @discardableResult
    public func reload(reason: String = "reload requested") -> Bool { listener.reload(reason: reason) }

    /// Whether a watched file changed since the last look (``FileWatchService`` asks).
    public var watchedFilesChanged: Bool { listener.watchedFilesChanged }

    /// Binds, accepts and serves until graceful shutdown or cancellation.
    public func run() async throws {
        try await listener.run(
            configure: { pipeline, _ in try pipeline.configureHTTPServerPipeline(withErrorHandling: true) },
            serve: { channel, record in await self.serve(channel, record: record) })
    }

    private func serve(_ channel: any Channel, record: ConnectionRecord) async {
        let async: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>
        do {
            async = try await channel.eventLoop.submit {
                let async = try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(
                    wrappingChannelSynchronously: channel)
                try channel.syncOptions?.setOption(.autoRead, value: true)
                return async
            }.get()
        } catch {
            record.noteClose("closed during the handshake")
            channel.close(promise: nil)
            return
        }
        let address = channel.remoteAddress?.ipAddress ?? "unknown"
        do {
            try await async.executeThenClose { inbound, outbound in
                var head: HTTPRequestHead?
                var body: [UInt8] = []
                var tooLarge = false
                for try await part in inbound {
                    switch part {
                    case .head(let request):
                        head = request
                        body = []
                        tooLarge = false
                    case .body(let buffer):
                        if body.count + buffer.readableBytes > ESTServerConfiguration.maximumBodyBytes {
                            tooLarge = true
                        } else {
                            body += buffer.readableBytesView
                        }
                    case .end:
                        guard let request = head else { continue }
                        let response: ESTResponse
                        if tooLarge {
                            response = .refusal(
                                .payloadTooLarge, reason: "too-large",
                                "the request body is over \(ESTServerConfiguration.maximumBodyBytes) bytes; a CSR is a few hundred"
                            )
                        } else if !limiter.admit(address) {
                            response = .refusal(
                                .tooManyRequests, reason: "rate-limited",
                                "too many requests from \(address) (over \(configuration.requestsPerMinute) a minute); wait and retry"
                            )
                        } else {
                            response = await handle(request, body: body, channel: channel, record: record)
                        }
                        if case .refused(let status, let reason, let message) = response.kind {
                            counters.refused(reason)
                            logger.warning(
                                "EST \(request.method) \(request.uri) from \(record.remote) refused (\(status.code)): \(message)",
                                metadata: [
                                    "event": "est-refused", "peer": "\(record.remote)", "status": "\(status.code)",
                                    "reason": "\(reason)",
                                ])
                        }
                        try await write(response, keepAlive: request.isKeepAlive && !tooLarge, to: outbound)
                        listener.countMessage(record)
                        if !request.isKeepAlive || tooLarge {
                            record.noteClose("request answered")
                            return
                        }
                        head = nil
                    }
                }
                record.noteClose("closed by peer")
            }
        } catch {
            record.noteClose("connection error: \(error)")
        }
    }

    private func write(
        _ response: ESTResponse, keepAlive: Bool, to outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>
    ) async throws {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        if response.base64 { headers.add(name: "Content-Transfer-Encoding", value: "base64") }
        headers.add(name: "Content-Length", value: "\(response.body.count)")
        headers.add(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        if response.status == .unauthorized {
            headers.add(name: "WWW-Authenticate", value: "Basic realm=\"securechannel EST\"")
        }
        try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: response.status, headers: headers)))
        try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: response.body))))
        try await outbound.write(.end(nil))
    }

    private func handle(
        _ request: HTTPRequestHead, body: [UInt8], channel: any Channel, record: ConnectionRecord
    ) async -> ESTResponse {
        let path = request.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.uri
        let prefix = "/.well-known/est/"
        guard path.hasPrefix(prefix) else {
            return .refusal(.notFound, reason: "not-found", "no such resource: EST lives under \(prefix)")
        }
        let operation = String(path.dropFirst(prefix.count))
        let expected: HTTPMethod =
            switch operation {
            case "cacerts", "crl": .GET
            case "simpleenroll", "simplereenroll": .POST
            default: .GET
            }
        guard ["cacerts", "crl", "simpleenroll", "simplereenroll"].contains(operation) else {
            return .refusal(
                .notFound, reason: "not-found",
                "no EST operation '\(operation)': cacerts, simpleenroll, simplereenroll and crl are served")
        }
        guard request.method == expected else {
            return .refusal(
                .methodNotAllowed, reason: "method", "\(operation) takes \(expected), not \(request.method)")
        }
        switch operation {
        case "cacerts":
            return await offload {
                .pkcs7(try CertsOnlyPKCS7.encode(try self.authority.chain()))
            }
        case "crl":
            return await offload { .crl(try self.currentCRL()) }
        case "simpleenroll":
            guard let token = Self.token(from: request.headers) else {
                return .refusal(
                    .unauthorized, reason: "no-token",
                    "simpleenroll needs a token: HTTP Basic with the token as password, or Authorization: Bearer TOKEN")
            }
            guard let csr = Self.csr(from: body) else {
                return .refusal(
                    .badRequest, reason: "bad-csr", "the body is not a base64 PKCS#10 request (application/pkcs10)")
            }
            let maximum = configuration.maximumLifetime
            let fallback = configuration.defaultLifetime
            let peer = record.remote
            return await offload {
                let issued = try self.authority.enroll(
                    csrDER: csr, token: token, maximumLifetime: maximum, defaultLifetime: fallback)
                self.audit(issued, operation: "enroll", who: "token holder at \(peer)")
                return .pkcs7(try CertsOnlyPKCS7.encode([issued.certificate]))
            }
        default:  // simplereenroll
            if record.certificate == nil, (try? await channel.nioSSL_peerCertificate().get()) != nil {
                try? await listener.verifyResumedSession(channel: channel, record: record)
            }
            guard let current = record.certificate, let identity = record.identity else {
                return .refusal(
                    .unauthorized, reason: "no-certificate",
                    "simplereenroll needs the current certificate as the TLS client certificate; a first certificate comes from simpleenroll with a token"
                )
            }
            guard let csr = Self.csr(from: body) else {
                return .refusal(
                    .badRequest, reason: "bad-csr", "the body is not a base64 PKCS#10 request (application/pkcs10)")
            }
            let maximum = configuration.maximumLifetime
            return await offload {
                let issued = try self.authority.reenroll(csrDER: csr, current: current, maximumLifetime: maximum)
                self.audit(issued, operation: "renew", who: "\(identity.subject) (serial \(identity.serial))")
                return .pkcs7(try CertsOnlyPKCS7.encode([issued.certificate]))
            }
        }
    }

    /// Runs CA work on the server's own threads; a PKIError becomes the matching 4xx.
    private func offload(_ body: @escaping @Sendable () throws -> ESTResponse) async -> ESTResponse {
        do {
            return try await work.runIfActive(eventLoop: MultiThreadedEventLoopGroup.singleton.any(), body).get()
        } catch let error as PKIError {
            let status: HTTPResponseStatus =
                switch error.code {
                case .tokenRefused: .unauthorized
                case .renewalRefused: .forbidden
                case .store, .io: .serviceUnavailable
                default: .badRequest
                }
            return .refusal(status, reason: "\(error.code)", error.message)
        } catch {
            return .refusal(.internalServerError, reason: "internal", "the CA failed: \(error)")
        }
    }

    /// The CRL to hand out: the last one made, or a new one once a revocation was added (by any process on the
    /// store) or the last is older than the refresh interval.
    private func currentCRL(now: Date = Date()) throws -> [UInt8] {
        let stamp = try authority.store.revocationStamp()
        if let cached = crlCache.withLockedValue({ $0 }), cached.stamp == stamp,
            now.timeIntervalSince(cached.made) < configuration.crlRefresh
        {
            return cached.der
        }
        let crl = try authority.generateCRL(days: configuration.crlDays, now: now)
        crlCache.withLockedValue { $0 = (crl.derBytes, now, stamp) }
        return crl.derBytes
    }

    private func audit(_ issued: IssuedCertificate, operation: String, who: String) {
        let certificate = issued.certificate
        let lifetime = Int(certificate.notValidAfter.timeIntervalSince(Date()).rounded())
        let kind = Self.kind(of: certificate)
        counters.issued(kind: kind, operation: operation)
        logger.info(
            "issued \(kind) certificate \(issued.serial) for \(certificate.subject) (\(operation), requested by \(who), valid \(lifetime) s)",
            metadata: [
                "event": "issued", "operation": "\(operation)", "who": "\(who)", "serial": "\(issued.serial)",
                "subject": "\(certificate.subject)", "kind": "\(kind)", "lifetime_seconds": "\(lifetime)",
                "names": "\(CertificateDescription.alternativeNames(of: certificate).joined(separator: ","))",
            ])
    }

    /// server, client or workload, from the extended key usages the CA gave it.
    static func kind(of certificate: Certificate) -> String {
        let usages = (try? certificate.extensions.extendedKeyUsage).map { Array($0) } ?? []
        switch (usages.contains(.serverAuth), usages.contains(.clientAuth)) {
        case (true, true): return "workload"
        case (true, false): return "server"
        default: return "client"
        }
    }

    /// The token from `Authorization: Bearer T` or HTTP Basic (the password; RFC 7030 §3.2.3).
    static func token(from headers: HTTPHeaders) -> String? {
        guard let value = headers.first(name: "Authorization") else { return nil }
        let parts = value.split(separator: " ", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { return nil }
        switch parts[0].lowercased() {
        case "bearer": return parts[1].trimmingCharacters(in: .whitespaces)
        case "basic":
            guard let decoded = Data(base64Encoded: parts[1].trimmingCharacters(in: .whitespaces)),
                let text = String(data: decoded, encoding: .utf8), let colon = text.firstIndex(of: ":")
            else { return nil }
            return String(text[text.index(after: colon)...])
        default: return nil
        }
    }

    /// The DER of a base64 body (line breaks allowed, as RFC 7030 sends it).
    static func csr(from body: [UInt8]) -> [UInt8]? {
        let text = String(decoding: body.filter { !$0.isASCIIWhitespace }, as: UTF8.self)
        guard !text.isEmpty, let data = Data(base64Encoded: text) else { return nil }
        return Array(data)
    }
}

extension UInt8 {
    fileprivate var isASCIIWhitespace: Bool { self == 0x20 || self == 0x0A || self == 0x0D || self == 0x09 }
}

/// One answer: what to send, and why it was refused when it was.
struct ESTResponse: Sendable {
    enum Kind: Sendable {
        case ok
        case refused(HTTPResponseStatus, reason: String, message: String)
    }

    var kind: Kind
    var status: HTTPResponseStatus
    var contentType: String
    var base64: Bool
    var body: [UInt8]

    static func pkcs7(_ der: [UInt8]) -> ESTResponse {
        ESTResponse(
            kind: .ok, status: .ok, contentType: "application/pkcs7-mime; smime-type=certs-only", base64: true,
            body: Array(Data(der).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed]).utf8)
                + [0x0A])
    }

    static func crl(_ der: [UInt8]) -> ESTResponse {
        ESTResponse(kind: .ok, status: .ok, contentType: "application/pkix-crl", base64: false, body: der)
    }

    static func refusal(_ status: HTTPResponseStatus, reason: String, _ message: String) -> ESTResponse {
        ESTResponse(
            kind: .refused(status, reason: reason, message: message), status: status,
            contentType: "text/plain; charset=utf-8", base64: false, body: Array((message + "\n").utf8))
    }
}

/// At most N requests a minute from one client address: a bucket of N tokens per address that refills at N a
/// minute, so a burst of N passes and a steady client gets N a minute, with no window edge to reset it.
final class RequestLimiter: Sendable {
    private let perMinute: Int
    private let state = NIOLockedValueBox<[String: (tokens: Double, last: Date)]>([:])

    init(perMinute: Int) { self.perMinute = perMinute }

    func admit(_ address: String, now: Date = Date()) -> Bool {
        let capacity = Double(perMinute)
        let rate = capacity / 60
        return state.withLockedValue { buckets in
            if buckets.count > 10_000 {
                // Forget the addresses whose buckets are full again: they lose nothing.
                buckets = buckets.filter { $0.value.tokens + now.timeIntervalSince($0.value.last) * rate < capacity }
            }
            var bucket = buckets[address] ?? (capacity, now)
            bucket.tokens = min(capacity, bucket.tokens + now.timeIntervalSince(bucket.last) * rate)
            bucket.last = now
            let admitted = bucket.tokens >= 1
            if admitted { bucket.tokens -= 1 }
            buckets[address] = bucket
            return admitted
        }
    }
}

/// The online CA's counters: issuances by kind and operation, refusals by reason.
struct ESTMetrics: Sendable {
    let factory: (any MetricsFactory)?

    func issued(kind: String, operation: String) {
        counter("securechannel_ca_issued_total", [("kind", kind), ("operation", operation)]).increment()
    }

    func refused(_ reason: String) {
        counter("securechannel_ca_refused_total", [("reason", reason)]).increment()
    }

    private func counter(_ label: String, _ dimensions: [(String, String)]) -> Counter {
        if let factory { return Counter(label: label, dimensions: dimensions, factory: factory) }
        return Counter(label: label, dimensions: dimensions)
    }
}
