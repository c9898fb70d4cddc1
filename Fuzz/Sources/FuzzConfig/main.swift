// The tunnel configuration file parser (YAML via Yams, then our validation of every entry).
import FuzzShim
import SecureChannelTunnel

#if canImport(Glibc)
import Glibc
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    _ = try? TunnelConfigFile(yaml: text, source: "fuzz.yaml", baseDirectory: "/nonexistent")
    return 0
}

exit(securechannel_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv) { fuzzOne($0, $1) })
