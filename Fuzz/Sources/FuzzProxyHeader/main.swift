// The PROXY protocol v2 header parser (`serve --accept-proxy-protocol`): bytes from anyone who reaches the port.
import FuzzShim
import NIOCore
import SecureChannel

#if canImport(Glibc)
import Glibc
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = ByteBuffer(bytes: UnsafeBufferPointer(start: data, count: size))
    if case .header(let length, _) = ProxyProtocolHeader.parse(bytes) {
        // A header never claims more bytes than arrived, nor fewer than its fixed part.
        precondition(length >= 16 && length <= size, "header length \(length) for \(size) bytes")
    }
    return 0
}

exit(securechannel_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv) { fuzzOne($0, $1) })
