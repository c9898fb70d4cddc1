import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Splits a byte stream into lines ending in LF (a CR before the LF is dropped too), like NIOExtras'
/// `LineBasedFrameDecoder`, but finds the LF with `memchr`: the generic byte-by-byte search was the largest
/// single cost of a 16 KiB bulk transfer (15 % of the server's samples, BENCHMARKS.md).
final class LineFrameDecoder: NIOSingleStepByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    /// Bytes already searched without finding an LF, so a long line is scanned once, not once per read.
    private var scanned = 0

    /// The offset of the first LF in `buffer`'s readable bytes at or after `start`, found with `memchr`.
    static func newlineOffset(in buffer: ByteBuffer, from start: Int = 0) -> Int? {
        buffer.withUnsafeReadableBytes { bytes in
            guard bytes.count > start, let base = bytes.baseAddress else { return nil }
            guard let hit = memchr(base + start, 0x0A, bytes.count - start) else { return nil }
            return base.distance(to: UnsafeRawPointer(hit))
        }
    }

    func decode(buffer: inout ByteBuffer) throws -> ByteBuffer? {
        guard let newline = Self.newlineOffset(in: buffer, from: scanned) else {
            scanned = buffer.readableBytes
            return nil
        }
        scanned = 0
        let dropCR = newline > 0 && buffer.getInteger(at: buffer.readerIndex + newline - 1, as: UInt8.self) == 0x0D
        let line = buffer.readSlice(length: dropCR ? newline - 1 : newline)
        buffer.moveReaderIndex(forwardBy: dropCR ? 2 : 1)
        return line
    }

    func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> ByteBuffer? {
        if let line = try decode(buffer: &buffer) { return line }
        if buffer.readableBytes > 0 {
            throw SecureChannelError(
                .connectionClosed,
                "the connection ended inside a message (\(buffer.readableBytes) bytes without a final newline)")
        }
        return nil
    }
}

/// Line framing as one inbound handler: the same lines, limit and end-of-input error as
/// `ByteToMessageHandler(LineFrameDecoder(), maximumBufferSize:)`, without its general buffer machinery (a
/// fifth of `serve`'s user-space CPU per message went to it). A read's complete lines are passed on as slices of
/// the read, without a copy; only the unfinished end of a read is kept, and joined to the next read.
final class LineFrameHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// The most bytes kept while waiting for an LF (the message limit plus CRLF): beyond it,
    /// `ByteToMessageDecoderError.PayloadTooLargeError`, as from `ByteToMessageHandler`.
    private let maximumBufferSize: Int
    /// The start of a line whose LF has not arrived yet.
    private var pending: ByteBuffer?
    /// Bytes of `pending` already searched for an LF.
    private var scanned = 0
    /// After an error nothing more is framed: the connection is being closed.
    private var failed = false

    init(maximumBufferSize: Int) {
        self.maximumBufferSize = maximumBufferSize
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }
        var buffer = unwrapInboundIn(data)
        var from = 0
        if var held = pending {
            pending = nil
            from = scanned
            held.writeBuffer(&buffer)
            buffer = held
        }
        while let newline = LineFrameDecoder.newlineOffset(in: buffer, from: from) {
            from = 0
            let dropCR =
                newline > 0 && buffer.getInteger(at: buffer.readerIndex + newline - 1, as: UInt8.self) == 0x0D
            let line = buffer.readSlice(length: dropCR ? newline - 1 : newline)!
            buffer.moveReaderIndex(forwardBy: dropCR ? 2 : 1)
            context.fireChannelRead(wrapInboundOut(line))
            if failed { return }
        }
        scanned = buffer.readableBytes
        guard buffer.readableBytes > 0 else { return }
        guard buffer.readableBytes <= maximumBufferSize else {
            failed = true
            context.fireErrorCaught(ByteToMessageDecoderError.PayloadTooLargeError())
            return
        }
        pending = buffer
    }

    func channelInactive(context: ChannelHandlerContext) {
        endOfInput(context: context)
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event { endOfInput(context: context) }
        context.fireUserInboundEventTriggered(event)
    }

    /// Input ended: an unfinished line is an error (the message was cut off), as `LineFrameDecoder.decodeLast`.
    private func endOfInput(context: ChannelHandlerContext) {
        guard !failed, let held = pending, held.readableBytes > 0 else { return }
        pending = nil
        failed = true
        context.fireErrorCaught(
            SecureChannelError(
                .connectionClosed,
                "the connection ended inside a message (\(held.readableBytes) bytes without a final newline)"))
    }
}
