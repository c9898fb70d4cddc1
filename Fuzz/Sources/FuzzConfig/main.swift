// The configuration file parser (YAML via Yams, then our checks of the serve section and every tunnel entry).
import FuzzShim
import SecureChannelConfig

#if canImport(Glibc)
import Glibc
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    if let file = try? ConfigFile(yaml: text, source: "fuzz.yaml", baseDirectory: "/nonexistent") {
        _ = try? file.tunnels()
        _ = try? file.serveSettings(overriddenBy: ConfigFields())
        _ = try? file.tunnelProcessOptions(overriddenBy: ConfigFields())
    }
    return 0
}

exit(securechannel_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv) { fuzzOne($0, $1) })
