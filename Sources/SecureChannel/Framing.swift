import NIOCore
import NIOExtras

/// How messages are delimited on the wire.
public enum Framing: String, Sendable, CaseIterable, Codable {
    /// UTF-8 text, one message per line ending in LF (CRLF accepted): works with openssl s_client by hand.
    case lines
    /// A 4-byte big-endian length, then that many bytes (binary-safe).
    case length

    /// Default maximum message size: 64 KiB.
    public static let defaultMaximumMessageBytes = 64 * 1024

    /// Adds the decoder (bounded to `maximumMessageBytes`) and, for `length`, the encoder: what `MessageServer`
    /// and `MessageClient` put behind TLS, for pipelines of your own (and for the fuzz targets).
    public func addHandlers(to pipeline: ChannelPipeline.SynchronousOperations, maximumMessageBytes: Int) throws {
        try addHandlers(to: pipeline, maximumMessageBytes: maximumMessageBytes, limitEachMessage: true)
    }

    /// `limitEachMessage: false` leaves out the exact per-message limit (``FrameLimitHandler``), for a handler that
    /// checks each message itself (``MessageReplyHandler``): one handler fewer for every message.
    func addHandlers(
        to pipeline: ChannelPipeline.SynchronousOperations, maximumMessageBytes: Int, limitEachMessage: Bool
    ) throws {
        switch self {
        case .lines:
            // +2 for CRLF: a line of exactly the maximum still fits.
            try pipeline.addHandler(LineFrameHandler(maximumBufferSize: maximumMessageBytes + 2))
        case .length:
            try pipeline.addHandler(
                ByteToMessageHandler(
                    LengthFieldBasedFrameDecoder(lengthFieldBitLength: .fourBytes),
                    maximumBufferSize: maximumMessageBytes + 4))
            try pipeline.addHandler(LengthFieldPrepender(lengthFieldBitLength: .fourBytes))
        }
        if limitEachMessage { try pipeline.addHandler(FrameLimitHandler(maximumMessageBytes: maximumMessageBytes)) }
    }

    /// Encodes one outgoing message (for `lines`, appends LF; `length` is prefixed by the pipeline).
    func frame(_ message: ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer {
        guard self == .lines else { return message }
        var buffer = allocator.buffer(capacity: message.readableBytes + 1)
        var message = message
        buffer.writeBuffer(&message)
        buffer.writeInteger(UInt8(ascii: "\n"))
        return buffer
    }
}
