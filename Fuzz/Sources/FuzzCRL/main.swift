// The CRL parser (X.509 v2 CRLs, PEM or DER), written on swift-asn1.
import FuzzShim
import SecureChannelPKI

#if canImport(Glibc)
import Glibc
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    _ = try? CertificateRevocationList.load(Array(UnsafeBufferPointer(start: data, count: size)), source: "fuzz")
    return 0
}

exit(securechannel_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv) { fuzzOne($0, $1) })
