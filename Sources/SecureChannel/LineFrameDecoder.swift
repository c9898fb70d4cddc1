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
