import NIOCore

/// Holds what a channel reads before its glue is in place (TLS can deliver application data together with the
/// end of the handshake, and a server may speak first), then hands it on in order, end-of-input included.
/// Bounded: past 64 KiB it stops asking for reads until it is removed.
final class PendingInboundHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = NIOAny

    private static let limit = 64 * 1024
    private var buffered: [ByteBuffer] = []
    private var bufferedBytes = 0
    private var sawEndOfInput = false
    private var heldRead = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        bufferedBytes += buffer.readableBytes
        buffered.append(buffer)
    }

    func channelReadComplete(context: ChannelHandlerContext) {}

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            sawEndOfInput = true
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func read(context: ChannelHandlerContext) {
        if bufferedBytes < Self.limit {
            context.read()
        } else {
            heldRead = true
        }
    }

    func removeHandler(context: ChannelHandlerContext, removalToken: ChannelHandlerContext.RemovalToken) {
        for buffer in buffered { context.fireChannelRead(wrapInboundOut(buffer)) }
        if !buffered.isEmpty { context.fireChannelReadComplete() }
        buffered = []
        if sawEndOfInput { context.fireUserInboundEventTriggered(ChannelEvent.inputClosed) }
        if heldRead { context.read() }
        context.leavePipeline(removalToken: removalToken)
    }
}
