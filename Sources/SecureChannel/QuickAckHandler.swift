import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// Acknowledges the client's handshake flight at once (Linux `TCP_QUICKACK`) until the handshake is done.
///
/// A client that leaves Nagle's algorithm on (Python's `ssl` sockets, the course exercise's client) sends its
/// TLS 1.3 Finished and then its first message; Nagle holds the message until the Finished is acknowledged, and
/// after the Finished the server has nothing to send, so the kernel delays that ACK by 40 ms. Every first message
/// took 40 ms longer than the second. An immediate ACK after each handshake read removes the stall; once the
/// handshake completed, the handler does nothing more (normal delayed ACKs ride on the replies).
final class QuickAckHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private var handshakeDone = false
    private let handshake: EventLoopFuture<Void>

    /// `handshake` completes (either way) when the TLS handshake and our verification are over.
    init(handshake: EventLoopFuture<Void>) {
        self.handshake = handshake
    }

    func handlerAdded(context: ChannelHandlerContext) {
        handshake.assumeIsolated().whenComplete { _ in self.handshakeDone = true }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        #if os(Linux)
            if !handshakeDone {
                // Linux re-arms delayed ACKs by itself, so this is set after each read of the handshake.
                try? context.channel.syncOptions?.setOption(
                    .socket(SocketOptionLevel(IPPROTO_TCP), SocketOptionName(TCP_QUICKACK)), value: 1)
            }
        #endif
        context.fireChannelReadComplete()
    }
}
