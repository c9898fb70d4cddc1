import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import SecureChannel
import SecureChannelPKI
import X509

/// An EST client (RFC 7030) for `securechannel enroll` and `renew`: one request per TLS 1.3 connection, the server
/// verified against `trust` with its name checked strictly (the host of the URL), our certificate presented when
/// an identity is given.
public struct ESTClient: Sendable {
    /// `https://HOST:PORT`.
    public let host: String
    /// The port.
    public let port: Int
    /// The roots the server's certificate must chain to; nil only for ``bootstrap(url:fingerprint:)``'s first look.
    let trust: [Certificate]?
    /// The certificate and key presented (renewal).
    let identity: TLSIdentity?
    /// Connect, handshake and answer, each.
    public var timeout: TimeAmount = .seconds(15)
    /// The TLS context, made once for every request of this client.
    private let context: NIOSSLContext
    /// The CA's chain as last verified, so that a client making many requests (`ca bench-renew`, a daemon's
    /// retries) does not verify the same bytes again until one of them expires.
    private let accepted = AcceptedServerChain()

    /// A client that trusts `trust` and presents `identity`, if given.
    public init(url: String, trust: [Certificate], identity: TLSIdentity? = nil) throws {
        (host, port) = try Self.parse(url)
        self.trust = trust
        self.identity = identity
        context = try Self.makeContext(verifying: true, identity: identity)
    }

    private init(host: String, port: Int) throws {
        self.host = host
        self.port = port
        trust = nil
        identity = nil
        context = try Self.makeContext(verifying: false, identity: nil)
    }

    private static func makeContext(verifying: Bool, identity: TLSIdentity?) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        TLSPolicy.default.apply(to: &configuration)
        configuration.trustRoots = .certificates([])
        // With a trust set, the peer is verified, by the callback of each request (which replaces BoringSSL's chain
        // check and checks the name strictly). NIOSSL never calls a custom callback in `.none` mode, so `.none` is
        // kept only for the bootstrap's first look, whose answer is accepted by the root's fingerprint alone.
        configuration.certificateVerification = verifying ? .noHostnameVerification : .none
        if let identity {
            configuration.certificateChain = identity.nioChain.map { .certificate($0) }
            configuration.privateKey = .privateKey(identity.nioKey)
        }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw ESTClientError("the TLS stack refused the client configuration: \(error)")
        }
    }

    /// Trusts the CA at `url` by the SHA-256 fingerprint of its root (as `step ca bootstrap` does): fetches
    /// `cacerts` without verifying the server, accepts it only if its last certificate is a self-signed root with
    /// that fingerprint that signs the rest, and returns a client that trusts that root, with the chain.
    public static func bootstrap(url: String, fingerprint: String) async throws -> (ESTClient, [Certificate]) {
        let (host, port) = try parse(url)
        let wanted = fingerprint.replacingOccurrences(of: ":", with: "").lowercased()
        guard wanted.count == 64, wanted.allSatisfy(\.isHexDigit) else {
            throw ESTClientError("--ca-fingerprint must be the root's SHA-256, 64 hex digits (colons allowed)")
        }
        let unverified = try ESTClient(host: host, port: port)
        let chain = try await unverified.caCertificates()
        guard let root = chain.last, root.subject == root.issuer else {
            throw ESTClientError("\(url) sent no root certificate in cacerts")
        }
        let found = CertificateIO.sha256Hex(try CertificateIO.der(root))
        guard found == wanted else {
            throw ESTClientError(
                "the CA at \(url) has root fingerprint \(found), not \(wanted): refusing to trust it (check the fingerprint, or the address)"
            )
        }
        do {
            _ = try await SecureChannelPKI.CertificateVerification.verify(chain: chain, roots: [root])
        } catch {
            throw ESTClientError("the CA certificates from \(url) do not chain to its root: \(error.message)")
        }
        return (try ESTClient(url: url, trust: [root]), chain)
    }

    /// Refuses a certificate from the CA that does not chain to `trust` through `chain` (nothing is written then).
    public static func checkIssued(_ certificate: Certificate, chain: [Certificate], trust: [Certificate]) async throws
    {
        do {
            _ = try await SecureChannelPKI.CertificateVerification.verify(
                chain: [certificate] + chain.filter { $0.subject != $0.issuer }, roots: trust)
        } catch {
            throw ESTClientError(
                "the certificate the online CA returned does not chain to the trusted root (\(error.message)); nothing was written"
            )
        }
    }

    /// `GET /.well-known/est/cacerts`: the CA's chain, the root last.
    public func caCertificates() async throws -> [Certificate] {
        let answer = try await request(.GET, "cacerts", body: nil, token: nil)
        return try Self.certificates(answer, what: "cacerts")
    }

    /// `POST simpleenroll` with `csr` (DER) and a one-time token: the new certificate.
    public func enroll(csr: [UInt8], token: String) async throws -> Certificate {
        let answer = try await request(.POST, "simpleenroll", body: csr, token: token)
        guard let certificate = try Self.certificates(answer, what: "simpleenroll").first else {
            throw ESTClientError("simpleenroll answered with no certificate")
        }
        return certificate
    }

    /// `POST simplereenroll` with `csr` (DER), authorised by our identity: the new certificate.
    public func reenroll(csr: [UInt8]) async throws -> Certificate {
        let answer = try await request(.POST, "simplereenroll", body: csr, token: nil)
        guard let certificate = try Self.certificates(answer, what: "simplereenroll").first else {
            throw ESTClientError("simplereenroll answered with no certificate")
        }
        return certificate
    }

    /// `GET /.well-known/est/crl`: the CA's CRL (DER).
    public func crl() async throws -> [UInt8] {
        try await request(.GET, "crl", body: nil, token: nil)
    }

    /// BoringSSL's reason (`SSLV3_ALERT_CERTIFICATE_UNKNOWN` → `certificate unknown`), without file and line.
    static func tlsReason(_ text: String) -> String? {
        guard let range = text.range(of: "OPENSSL_internal:") else { return nil }
        let reason = text[range.upperBound...].prefix { $0 != " " && $0 != "]" }
        return reason.replacingOccurrences(of: "SSLV3_ALERT_", with: "").replacingOccurrences(
            of: "TLSV1_ALERT_", with: ""
        )
        .replacingOccurrences(of: "_", with: " ").lowercased()
    }

    static func certificates(_ body: [UInt8], what: String) throws -> [Certificate] {
        let text = String(decoding: body.filter { $0 > 0x20 }, as: UTF8.self)
        guard let der = Data(base64Encoded: text) else {
            throw ESTClientError("\(what) answered with something that is not base64 PKCS#7")
        }
        do {
            return try CertsOnlyPKCS7.decode(Array(der), source: "the \(what) answer")
        } catch let error as PKIError {
            throw ESTClientError(error.message)
        }
    }

    static func parse(_ url: String) throws -> (String, Int) {
        guard let components = URLComponents(string: url), components.scheme == "https",
            let host = components.host, !host.isEmpty
        else {
            throw ESTClientError("'\(url)' is not the online CA's address; use https://HOST:PORT")
        }
        return (host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host, components.port ?? 443)
    }

    /// One request on a new connection; the body of a 200 answer, else the server's one-line reason.
    func request(_ method: HTTPMethod, _ operation: String, body: [UInt8]?, token: String?) async throws -> [UInt8] {
        let context = self.context
        let accepted = self.accepted
        let host = self.host
        let trust = self.trust
        let failure = NIOLockedBoxSendable<String?>(nil)
        let serverName = IPAddressText.isAddress(host) ? nil : host
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connectTimeout(timeout)
        let channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>
        do {
            // An address is connected to as such: a host name goes through NIO's resolver (getaddrinfo on another
            // thread, then Happy Eyeballs), which an address does not need.
            let target =
                IPAddressText.isAddress(host)
                ? ConnectTarget.address(try SocketAddress(ipAddress: host, port: port))
                : ConnectTarget.name(host, port)
            channel = try await target.connect(with: bootstrap) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = try NIOSSLClientHandler(
                        context: context, serverHostname: serverName,
                        customVerificationCallback: { certificates, promise in
                            guard let trust else {
                                // Not reached: `.none` mode never calls this (bootstrap: checked by fingerprint).
                                promise.succeed(.failed)
                                return
                            }
                            let presented = (try? certificates.map { try $0.toDERBytes() }) ?? []
                            if !presented.isEmpty, accepted.contains(presented) {
                                promise.succeed(.certificateVerified)
                                return
                            }
                            promise.completeWithTask {
                                do {
                                    let chain = try presented.map { try Certificate(derEncoded: $0) }
                                    _ = try await SecureChannelPKI.CertificateVerification.verify(
                                        chain: chain, roots: trust, purpose: .server, host: host)
                                    accepted.remember(presented, until: chain.map(\.notValidAfter).min() ?? Date())
                                    return .certificateVerified
                                } catch let error as SecureChannelPKI.CertificateVerification.Failure {
                                    failure.value = "the online CA's certificate was refused: \(error.message)"
                                    return .failed
                                } catch {
                                    failure.value = "the online CA's certificate was refused: \(error)"
                                    return .failed
                                }
                            }
                        })
                    try channel.pipeline.syncOperations.addHandler(handler)
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(
                        wrappingChannelSynchronously: channel)
                }
            }
        } catch {
            let reason = SocketErrorText.connect(error)
            let hint = reason == "connection refused" ? " (is 'securechannel ca serve' running there?)" : ""
            throw ESTClientError("cannot connect to the online CA at \(host):\(port): \(reason)\(hint)")
        }
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "\(host):\(port)")
        headers.add(name: "Connection", value: "close")
        if let token { headers.add(name: "Authorization", value: "Bearer \(token)") }
        let payload = body.map { Array(Data($0).base64EncodedString(options: [.lineLength64Characters]).utf8) } ?? []
        if body != nil {
            headers.add(name: "Content-Type", value: "application/pkcs10")
            headers.add(name: "Content-Transfer-Encoding", value: "base64")
        }
        headers.add(name: "Content-Length", value: "\(payload.count)")
        let head = HTTPRequestHead(
            version: .http1_1, method: method, uri: "/.well-known/est/\(operation)", headers: headers)
        // The deadline closes the connection (a timer on its event loop, not a task per request); what was waiting
        // on it then fails, and the flag says why.
        let deadline = timeout
        let timedOut = NIOLockedValueBox(false)
        let timer = channel.channel.eventLoop.scheduleTask(in: deadline) {
            timedOut.withLockedValue { $0 = true }
            channel.channel.close(promise: nil)
        }
        defer { timer.cancel() }
        let late = {
            let seconds = Double(deadline.nanoseconds) / 1e9
            let text = seconds == seconds.rounded() ? "\(Int(seconds))" : "\(seconds)"
            return ESTClientError("the online CA did not answer \(operation) within \(text) s")
        }
        do {
            let answer = try await channel.executeThenClose { inbound, outbound in
                try await outbound.write(.head(head))
                try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: payload))))
                try await outbound.write(.end(nil))
                var status: HTTPResponseStatus?
                var received: [UInt8] = []
                for try await part in inbound {
                    switch part {
                    case .head(let response): status = response.status
                    case .body(let buffer): received += buffer.readableBytesView
                    case .end:
                        guard let status else { throw ESTClientError("the online CA answered no status") }
                        guard status == .ok else {
                            let reason = String(decoding: received, as: UTF8.self)
                                .trimmingCharacters(in: .whitespacesAndNewlines)
                            throw ESTClientError(
                                "the online CA refused \(operation) (\(status.code)): \(reason.isEmpty ? status.reasonPhrase : reason)"
                            )
                        }
                        return received
                    }
                }
                throw ESTClientError("the online CA closed the connection before answering \(operation)")
            }
            return answer
        } catch _ where timedOut.withLockedValue({ $0 }) {
            throw late()
        } catch let error as ESTClientError {
            throw error
        } catch {
            if let reason = failure.value { throw ESTClientError(reason) }
            if let tls = Self.tlsReason("\(error)") {
                throw ESTClientError(
                    "the TLS handshake with the online CA at \(host):\(port) failed (\(tls))\(identity == nil ? "" : "; is the certificate one this CA issued, unexpired and not revoked?")"
                )
            }
            throw ESTClientError("the online CA at \(host):\(port) failed \(operation): \(error)")
        }
    }
}

/// The one error of the EST client: a line that says what went wrong and what to do.
public struct ESTClientError: Error, CustomStringConvertible, Sendable {
    /// One line.
    public let message: String
    init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The last server chain an ``ESTClient`` verified, byte for byte, until the first of its certificates expires.
/// The client's trust and the name it checks never change, and the EST client checks no CRL, so the same bytes
/// get the same answer until then.
final class AcceptedServerChain: Sendable {
    private let last = NIOLockedValueBox<(chain: [[UInt8]], until: Date)?>(nil)

    func contains(_ chain: [[UInt8]], now: Date = Date()) -> Bool {
        last.withLockedValue { last in
            guard let last, now < last.until else { return false }
            return last.chain == chain
        }
    }

    func remember(_ chain: [[UInt8]], until: Date) {
        last.withLockedValue { $0 = (chain, until) }
    }
}

/// Where a request connects: an address as it is, a name through NIO's resolver.
enum ConnectTarget {
    case address(SocketAddress)
    case name(String, Int)

    func connect<Output: Sendable>(
        with bootstrap: ClientBootstrap,
        channelInitializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Output>
    ) async throws -> Output {
        switch self {
        case .address(let address):
            return try await bootstrap.connect(to: address, channelInitializer: channelInitializer)
        case .name(let host, let port):
            return try await bootstrap.connect(host: host, port: port, channelInitializer: channelInitializer)
        }
    }
}

enum IPAddressText {
    static func isAddress(_ text: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
    }
}
