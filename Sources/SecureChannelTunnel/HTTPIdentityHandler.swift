import NIOCore
import NIOHTTP1
import SecureChannel
import SecureChannelPKI
import X509

/// `tunnel server --http-identity-header NAME`: the plaintext side speaks HTTP/1.1, so the tunnel reads each
/// request (NIOHTTP1's decoder), removes every header NAME the client sent (a client must never forge its
/// identity), adds NAME with the verified identity in Envoy's `X-Forwarded-Client-Cert` form, and writes the
/// request on as bytes: chunked bodies re-chunked, fixed-length bodies as they came, pipelined requests in order.
/// Responses are not touched. A request that is not HTTP/1.x gets a 400 and the connection ends.
final class HTTPIdentityHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let name: String
    private let value: String
    private let record: ConnectionRecord
    private var chunked = false
    private var refused = false

    init(name: String, value: String, record: ConnectionRecord) {
        self.name = name
        self.value = value
        self.record = record
    }

    /// Envoy's XFCC element for a verified client: `Hash=…;Subject="…";URI=…;DNS=…`.
    static func forwardedClientCert(identity: PeerIdentity, certificate: Certificate?) -> String {
        var parts: [String] = []
        if let certificate, let der = try? CertificateIO.der(certificate) {
            parts.append("Hash=" + CertificateIO.sha256Hex(der))
        }
        parts.append(
            "Subject=\""
                + identity.subject.replacingOccurrences(of: "\\", with: "\\\\")
                .replacingOccurrences(of: "\"", with: "\\\"") + "\"")
        if let uri = identity.spiffeID ?? identity.uris.first { parts.append("URI=" + uri) }
        parts += identity.dnsNames.map { "DNS=" + $0 }
        // Names come from a certificate: a control character (CR, LF) must never split the request's headers.
        return String(parts.joined(separator: ";").unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F })
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        var out = context.channel.allocator.buffer(capacity: 256)
        switch unwrapInboundIn(data) {
        case .head(var head):
            guard head.version.major == 1 else {
                refuse(context, "HTTP/\(head.version.major).\(head.version.minor) is not HTTP/1.x")
                return
            }
            head.headers.remove(name: name)
            head.headers.add(name: name, value: value)
            chunked = head.headers[canonicalForm: "transfer-encoding"].contains { $0.lowercased() == "chunked" }
            out.writeString("\(head.method.rawValue) \(head.uri) HTTP/\(head.version.major).\(head.version.minor)\r\n")
            for (header, text) in head.headers { out.writeString("\(header): \(text)\r\n") }
            out.writeString("\r\n")
        case .body(var body):
            if chunked {
                out.writeString(String(body.readableBytes, radix: 16) + "\r\n")
                out.writeBuffer(&body)
                out.writeString("\r\n")
            } else {
                out.writeBuffer(&body)
            }
        case .end(let trailers):
            guard chunked else { return }
            out.writeString("0\r\n")
            for (header, text) in trailers ?? [:] { out.writeString("\(header): \(text)\r\n") }
            out.writeString("\r\n")
            chunked = false
        }
        context.fireChannelRead(wrapInboundOut(out))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is HTTPParserError {
            refuse(context, "not an HTTP/1.1 request (\(error))")
        } else {
            context.fireErrorCaught(error)
        }
    }

    private func refuse(_ context: ChannelHandlerContext, _ reason: String) {
        refused = true
        record.noteClose("refused: \(reason) (--http-identity-header needs HTTP/1.x)")
        let body = "400 Bad Request: \(reason); this tunnel forwards HTTP/1.1 only\n"
        var response = context.channel.allocator.buffer(capacity: 128 + body.utf8.count)
        response.writeString(
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n"
                + body)
        context.writeAndFlush(wrapOutboundOut(response)).whenComplete { _ in context.close(promise: nil) }
    }
}
