// The private-key loader: PEM or DER, PKCS#8, encrypted PKCS#8 (without a passphrase it must refuse cleanly),
// PKCS#1, SEC1 with or without EC PARAMETERS.
import FuzzShim
import SecureChannelPKI

#if canImport(Glibc)
import Glibc
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    _ = try? PrivateKeyIO.parse(Array(UnsafeBufferPointer(start: data, count: size)), source: "fuzz")
    return 0
}

exit(securechannel_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv) { fuzzOne($0, $1) })
