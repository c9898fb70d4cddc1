// The frame decoders exactly as the server's pipeline installs them (line or length framing, bounded), fed the
// input in pieces. Byte 0 picks the framing and the limit, byte 1 the piece size; the rest is the stream.
import FuzzShim
import NIOCore
import NIOEmbedded
import SecureChannel

#if canImport(Glibc)
import Glibc
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size >= 2 else { return 0 }
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let framing: Framing = bytes[0] & 1 == 0 ? .lines : .length
    let limit = [16, 100, 1_024, 65_536][Int(bytes[0] >> 1) & 3]
    let piece = max(1, Int(bytes[1]))
    let channel = EmbeddedChannel()
    // An EmbeddedChannel left open keeps its pipeline (and the handlers) alive: LeakSanitizer reports it.
    defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
    do {
        try framing.addHandlers(to: channel.pipeline.syncOperations, maximumMessageBytes: limit)
        var offset = 2
        while offset < size {
            let end = min(size, offset + piece)
            try channel.writeInbound(ByteBuffer(bytes: bytes[offset..<end]))
            while let message = try channel.readInbound(as: ByteBuffer.self) {
                precondition(message.readableBytes <= limit, "a message over the limit got through")
            }
            offset = end
        }
    } catch {
        // Refusing bad input is the point; only a crash or a sanitizer report is a finding.
    }
    return 0
}

exit(securechannel_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv) { fuzzOne($0, $1) })
