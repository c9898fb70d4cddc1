import NIOCore
import SecureChannel

/// Joins a client-facing channel (holding a ``PendingInboundHandler`` at its tail) to a connected target channel on
/// the same event loop, optionally sending `preamble` to the target first, then lets both read.
enum Glue {
    /// `clientHandlers` go between the client's TLS and the glue (the HTTP identity header's codec), on the loop.
    static func join(
        client: any Channel, target: any Channel, preamble: ByteBuffer?, counter: TransferCounter,
        record: ConnectionRecord, clientHandlers: @escaping @Sendable () -> [any ChannelHandler] = { [] }
    ) async throws {
        try await client.eventLoop.submit {
            try client.pipeline.syncOperations.addHandlers(clientHandlers())
            let (clientSide, targetSide) = GlueHandler.pair(counter: counter) { error in
                record.noteClose("error: \(ErrorDescription.describe(error, record: record, handshakeCompleted: true))")
            }
            if let preamble { target.writeAndFlush(preamble, promise: nil) }
            try target.pipeline.syncOperations.addHandler(targetSide)
            try client.pipeline.syncOperations.addHandler(clientSide)
            // Hands over whatever arrived before the glue (with the end of the handshake, or a server speaking
            // first), in order.
            for channel in [client, target] {
                if let pending = try? channel.pipeline.syncOperations.handler(type: PendingInboundHandler.self) {
                    channel.pipeline.syncOperations.removeHandler(pending, promise: nil)
                }
            }
            try client.syncOptions?.setOption(.autoRead, value: true)
            try target.syncOptions?.setOption(.autoRead, value: true)
        }.get()
        client.closeFuture.whenComplete { _ in record.noteClose("closed by client") }
        target.closeFuture.whenComplete { _ in record.noteClose("closed by target") }
        try? await client.closeFuture.get()
        try? await target.closeFuture.get()
        record.traffic = TunnelText.bytes(toTarget: counter.toTarget, toClient: counter.toClient)
    }
}
