import NIOCore

/// Reads the PROXY protocol v2 header a load balancer (HAProxy `send-proxy-v2`) puts before the TLS bytes, records
/// the real client address, then passes the rest on and leaves the pipeline. A connection without a valid header
/// is closed with the reason: behind a proxy, a direct connection is not expected and its address claims nothing.
final class ProxyProtocolReceiver: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let record: ConnectionRecord
    private var buffer: ByteBuffer?

    init(record: ConnectionRecord) {
        self.record = record
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if var held = buffer {
            held.writeBuffer(&bytes)
            bytes = held
        }
        switch ProxyProtocolHeader.parse(bytes) {
        case .needMore:
            buffer = bytes
        case .invalid(let reason):
            buffer = nil
            record.noteRefusal(.proxyProtocol)
            record.noteClose("refused: \(reason)")
            context.close(promise: nil)
        case .header(let length, let source):
            buffer = nil
            if let source { record.remote = ConnectionRecord.display(source) }
            bytes.moveReaderIndex(forwardBy: length)
            if bytes.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(bytes)) }
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }
}
