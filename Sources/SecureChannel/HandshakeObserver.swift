import NIOCore

/// Reads the negotiated cipher suite and key-exchange group from the plaintext ServerHello as it passes
/// (outbound on a server, inbound on a client), because NIOSSL does not expose them. It only observes: bytes
/// pass through unchanged, and it stops looking once it has seen the ServerHello or anything encrypted. (Removing
/// it from inside its own `write` lost the server's first flight; a server removes it on the tick after the
/// handshake completed.)
final class HandshakeObserver: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Side { case server, client }

    /// What a ServerHello says.
    struct Result: Sendable, Equatable {
        var cipherSuite: UInt16
        var group: UInt16?
    }

    private let side: Side
    private let record: ConnectionRecord
    private var buffer = ByteBuffer()
    private var done = false
    /// Never buffer more than this while looking (a ServerHello is small).
    private static let limit = 16 * 1024

    init(side: Side, record: ConnectionRecord) {
        self.side = side
        self.record = record
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        context.fireChannelRead(data)
        if side == .client && !done { observe(bytes, context: context) }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let bytes = unwrapOutboundIn(data)
        context.write(data, promise: promise)
        if side == .server && !done { observe(bytes, context: context) }
    }

    private func observe(_ bytes: ByteBuffer, context: ChannelHandlerContext) {
        var bytes = bytes
        buffer.writeBuffer(&bytes)
        switch Self.parse(buffer) {
        case .needMore where buffer.readableBytes < Self.limit:
            return
        case .found(let result):
            record.setNegotiated(cipher: result.cipherSuite, group: result.group)
        default:
            break
        }
        done = true
        buffer = ByteBuffer()
    }

    enum ParseResult: Equatable {
        case needMore
        case found(Result)
        case gaveUp
    }

    /// The HelloRetryRequest "random" value (RFC 8446 §4.1.3).
    static let helloRetryRandom: [UInt8] = [
        0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
        0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
    ]

    /// Walks TLS records from the start of the server's stream, skipping a HelloRetryRequest.
    static func parse(_ stream: ByteBuffer) -> ParseResult {
        var stream = stream
        var handshake = ByteBuffer()
        while let type = stream.readInteger(as: UInt8.self) {
            guard stream.readInteger(as: UInt16.self) != nil, let length = stream.readInteger(as: UInt16.self) else {
                return .needMore
            }
            guard var body = stream.readSlice(length: Int(length)) else { return .needMore }
            switch type {
            case 20: continue  // change_cipher_spec (compatibility mode)
            case 22: handshake.writeBuffer(&body)
            default: return .gaveUp  // alert or encrypted data before a ServerHello
            }
            // Walk complete handshake messages gathered so far.
            var messages = handshake
            while let messageType = messages.readInteger(as: UInt8.self) {
                guard let high = messages.readInteger(as: UInt8.self), let low = messages.readInteger(as: UInt16.self)
                else {
                    break
                }
                let messageLength = Int(high) << 16 | Int(low)
                guard var message = messages.readSlice(length: messageLength) else { break }
                guard messageType == 2 else { return .gaveUp }
                guard let hello = serverHello(&message) else { return .gaveUp }
                if hello.isRetry { continue }
                return .found(hello.result)
            }
        }
        return .needMore
    }

    private static func serverHello(_ message: inout ByteBuffer) -> (result: Result, isRetry: Bool)? {
        guard messageSkip(&message, 2), let random = message.readBytes(length: 32),
            let sessionIDLength = message.readInteger(as: UInt8.self), messageSkip(&message, Int(sessionIDLength)),
            let cipher = message.readInteger(as: UInt16.self), messageSkip(&message, 1)
        else { return nil }
        var group: UInt16?
        if let extensionsLength = message.readInteger(as: UInt16.self),
            var extensions = message.readSlice(length: Int(extensionsLength))
        {
            while let type = extensions.readInteger(as: UInt16.self),
                let length = extensions.readInteger(as: UInt16.self),
                var data = extensions.readSlice(length: Int(length))
            {
                if type == 0x0033 { group = data.readInteger(as: UInt16.self) }  // key_share
            }
        }
        return (Result(cipherSuite: cipher, group: group), random == helloRetryRandom)
    }

    private static func messageSkip(_ buffer: inout ByteBuffer, _ count: Int) -> Bool {
        guard buffer.readableBytes >= count else { return false }
        buffer.moveReaderIndex(forwardBy: count)
        return true
    }
}
