import NIOCore
import SecureChannel

/// Joins a client-facing channel (holding a ``PendingInboundHandler`` at its tail) to a connected target channel on
/// the same event loop, optionally sending `preamble` to the target first, then lets both read.
enum Glue {
    /// Joins the two channels; call on their event loop. `clientHandlers` go between the client's TLS and the glue
    /// (the HTTP identity header's codec). The record learns which side closed first and, when the end is logged,
    /// the bytes moved each way.
    static func start(
        client: any Channel, target: any Channel, preamble: ByteBuffer?, counter: TransferCounter,
        record: ConnectionRecord, clientHandlers: [any ChannelHandler] = []
    ) throws {
        client.eventLoop.preconditionInEventLoop()
        try client.pipeline.syncOperations.addHandlers(clientHandlers)
        let (clientSide, targetSide) = GlueHandler.pair(
            counter: counter,
            onError: { error in
                record.noteClose("error: \(ErrorDescription.describe(error, record: record, handshakeCompleted: true))")
            },
            onInactive: { direction in
                // Before either channel's close future completes, so before the end is logged.
                record.noteClose(direction == .toTarget ? "closed by client" : "closed by target")
            })
        record.describeTraffic { TunnelText.bytes(toTarget: counter.toTarget, toClient: counter.toClient) }
        if let preamble { target.writeAndFlush(preamble, promise: nil) }
        try target.pipeline.syncOperations.addHandler(targetSide)
        try client.pipeline.syncOperations.addHandler(clientSide)
        // Hands over whatever arrived before the glue (with the end of the handshake, or a server speaking first),
        // in order.
        for channel in [client, target] {
            if let pending = try? channel.pipeline.syncOperations.handler(type: PendingInboundHandler.self) {
                channel.pipeline.syncOperations.removeHandler(pending, promise: nil)
            }
        }
        try client.syncOptions?.setOption(.autoRead, value: true)
        try target.syncOptions?.setOption(.autoRead, value: true)
    }
}
