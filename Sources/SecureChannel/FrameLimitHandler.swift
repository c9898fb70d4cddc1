import NIOCore

/// Refuses a decoded message longer than the limit, whichever framing produced it.
///
/// `ByteToMessageHandler(maximumBufferSize:)` only bounds what is buffered while waiting for the end of a
/// message; a whole over-long message that arrives within one read passed through it (found by the FuzzFraming
/// target). This handler, right after the decoder, makes the limit exact: the same
/// `PayloadTooLargeError` as an over-long buffered message, so both end the same way.
final class FrameLimitHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let maximumMessageBytes: Int

    init(maximumMessageBytes: Int) {
        self.maximumMessageBytes = maximumMessageBytes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard unwrapInboundIn(data).readableBytes <= maximumMessageBytes else {
            context.fireErrorCaught(ByteToMessageDecoderError.PayloadTooLargeError())
            return
        }
        context.fireChannelRead(data)
    }
}
