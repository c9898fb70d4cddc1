import NIOCore

/// A PROXY protocol version 2 header (HAProxy's specification). The tunnel server sends one to its target before
/// any client byte (the client's address, and what TLS verified about it as TLVs); `serve --accept-proxy-protocol`
/// reads one from a load balancer in front of it (``parse(_:)``).
public struct ProxyProtocolHeader: Sendable, Equatable {
    /// The 12-byte signature that starts every v2 header.
    public static let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    /// TLV types used.
    public enum TLV {
        /// PP2_TYPE_SSL.
        public static let ssl: UInt8 = 0x20
        /// PP2_SUBTYPE_SSL_VERSION.
        public static let sslVersion: UInt8 = 0x21
        /// PP2_SUBTYPE_SSL_CN.
        public static let sslCN: UInt8 = 0x22
        /// PP2_SUBTYPE_SSL_CIPHER.
        public static let sslCipher: UInt8 = 0x23
        /// The client certificate (DER), in the first custom range (PP2_TYPE_MIN_CUSTOM); the spec has no type for it.
        public static let clientCertificate: UInt8 = 0xE0
        /// The client's SPIFFE ID (an X.509-SVID's one URI SAN) or else its first URI SAN, UTF-8 (custom range).
        public static let clientURI: UInt8 = 0xE1
    }

    /// PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN: TLS, with a client certificate on this connection.
    public static let clientFlags: UInt8 = 0x01 | 0x02

    /// The client's address.
    public var source: SocketAddress
    /// The address the client connected to.
    public var destination: SocketAddress
    /// TLS version, e.g. `TLSv1.3`.
    public var tlsVersion: String
    /// The verified client's common name.
    public var commonName: String?
    /// Cipher suite name.
    public var cipher: String?
    /// The client certificate, DER.
    public var clientCertificate: [UInt8]?
    /// The client's SPIFFE ID, or its first URI SAN (TLV ``TLV/clientURI``).
    public var clientURI: String?

    /// Creates a header.
    public init(
        source: SocketAddress, destination: SocketAddress, tlsVersion: String, commonName: String?, cipher: String?,
        clientCertificate: [UInt8]?
    ) {
        self.source = source
        self.destination = destination
        self.tlsVersion = tlsVersion
        self.commonName = commonName
        self.cipher = cipher
        self.clientCertificate = clientCertificate
    }

    /// The encoded header.
    public func encode() -> ByteBuffer {
        var addresses = ByteBuffer()
        var family: UInt8 = 0x00  // AF_UNSPEC: addresses unknown (e.g. UNIX sockets)
        switch (source, destination) {
        case (.v4(let src), .v4(let dst)):
            family = 0x11  // TCP over IPv4
            withUnsafeBytes(of: src.address.sin_addr) { addresses.writeBytes($0) }
            withUnsafeBytes(of: dst.address.sin_addr) { addresses.writeBytes($0) }
            addresses.writeInteger(UInt16(source.port ?? 0))
            addresses.writeInteger(UInt16(destination.port ?? 0))
        case (.v6(let src), .v6(let dst)):
            family = 0x21  // TCP over IPv6
            withUnsafeBytes(of: src.address.sin6_addr) { addresses.writeBytes($0) }
            withUnsafeBytes(of: dst.address.sin6_addr) { addresses.writeBytes($0) }
            addresses.writeInteger(UInt16(source.port ?? 0))
            addresses.writeInteger(UInt16(destination.port ?? 0))
        default:
            break
        }
        var ssl = ByteBuffer()
        ssl.writeInteger(Self.clientFlags)
        ssl.writeInteger(UInt32(0))  // verify: 0 = the client certificate verified
        Self.writeTLV(TLV.sslVersion, Array(tlsVersion.utf8), into: &ssl)
        if let commonName { Self.writeTLV(TLV.sslCN, Array(commonName.utf8), into: &ssl) }
        if let cipher { Self.writeTLV(TLV.sslCipher, Array(cipher.utf8), into: &ssl) }
        var tlvs = ByteBuffer()
        Self.writeTLV(TLV.ssl, Array(ssl.readableBytesView), into: &tlvs)
        if let clientCertificate { Self.writeTLV(TLV.clientCertificate, clientCertificate, into: &tlvs) }
        if let clientURI { Self.writeTLV(TLV.clientURI, Array(clientURI.utf8), into: &tlvs) }

        var header = ByteBuffer()
        header.writeBytes(Self.signature)
        header.writeInteger(UInt8(0x21))  // version 2, command PROXY
        header.writeInteger(family)
        header.writeInteger(UInt16(addresses.readableBytes + tlvs.readableBytes))
        header.writeBuffer(&addresses)
        header.writeBuffer(&tlvs)
        return header
    }

    /// What the start of a connection from a proxy holds.
    public enum Received: Sendable, Equatable {
        /// Not enough bytes yet.
        case needMore
        /// A complete header of `length` bytes. `source` is the client's address for a PROXY command over TCP;
        /// nil for a LOCAL command (the proxy's own health check) or an unspecified family.
        case header(length: Int, source: SocketAddress?)
        /// Not a PROXY protocol v2 header; the reason, in one line.
        case invalid(String)
    }

    /// Reads a PROXY protocol v2 header from the start of `bytes` (HAProxy's `send-proxy-v2`). TLVs are skipped.
    public static func parse(_ bytes: ByteBuffer) -> Received {
        let view = bytes.readableBytesView
        let prefix = view.prefix(signature.count)
        guard prefix.elementsEqual(signature.prefix(prefix.count)) else {
            if view.starts(with: Array("PROXY ".utf8)) {
                return .invalid(
                    "a PROXY protocol v1 (text) header: configure the proxy to send v2 (HAProxy: send-proxy-v2)")
            }
            return .invalid(
                "no PROXY protocol v2 header: this listener requires one, so every connection must come through the proxy"
            )
        }
        guard view.count >= 16 else { return .needMore }
        var fixed = bytes
        fixed.moveReaderIndex(forwardBy: signature.count)
        guard let versionCommand = fixed.readInteger(as: UInt8.self), let family = fixed.readInteger(as: UInt8.self),
            let length = fixed.readInteger(as: UInt16.self)
        else { return .needMore }
        guard versionCommand >> 4 == 2 else {
            return .invalid("PROXY protocol version \(versionCommand >> 4) is not supported (only 2)")
        }
        let command = versionCommand & 0x0F
        guard command <= 1 else { return .invalid("unknown PROXY protocol command \(command)") }
        let total = 16 + Int(length)
        guard view.count >= total, var body = fixed.readSlice(length: Int(length)) else { return .needMore }
        guard command == 1 else { return .header(length: total, source: nil) }  // LOCAL: keep the TCP peer
        // TCP over IPv4 (0x11) or IPv6 (0x21): source address, destination address, source port, destination port.
        let (size, name): (Int, String)
        switch family {
        case 0x11: (size, name) = (4, "IPv4")
        case 0x21: (size, name) = (16, "IPv6")
        default: return .header(length: total, source: nil)  // UNIX or unspecified: no IP address to use
        }
        guard let source = body.readBytes(length: size), body.readBytes(length: size) != nil,
            let port = body.readInteger(as: UInt16.self)
        else { return .invalid("PROXY protocol v2 header too short for \(name) addresses") }
        return .header(
            length: total, source: try? SocketAddress(packedIPAddress: ByteBuffer(bytes: source), port: Int(port)))
    }

    static func writeTLV(_ type: UInt8, _ value: [UInt8], into buffer: inout ByteBuffer) {
        buffer.writeInteger(type)
        buffer.writeInteger(UInt16(value.count))
        buffer.writeBytes(value)
    }
}
