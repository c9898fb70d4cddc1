import NIOCore

/// Counts the bytes that cross the socket (TLS records, both ways) into the connection's record and the
/// listener's metrics. Sits at the head of the pipeline; it only observes.
final class WireByteCounter: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let record: ConnectionRecord
    private let metrics: ListenerMetrics

    init(record: ConnectionRecord, metrics: ListenerMetrics) {
        self.record = record
        self.metrics = metrics
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let count = unwrapInboundIn(data).readableBytes
        record.countWire(received: count)
        metrics.bytesReceived.increment(by: count)
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let count = unwrapOutboundIn(data).readableBytes
        record.countWire(sent: count)
        metrics.bytesSent.increment(by: count)
        context.write(data, promise: promise)
    }
}
