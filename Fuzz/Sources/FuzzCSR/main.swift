// Certificate signing requests (`ca sign`): parsing, the self-signature check and the server and client policies.
import FuzzShim
import SecureChannelPKI

#if canImport(Glibc)
import Glibc
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    guard let csr = try? CertificateRequest.parse(Array(UnsafeBufferPointer(start: data, count: size)), source: "fuzz") else { return 0 }
    for kind in CertificateKind.allCases {
        _ = try? CertificateRequest.issuanceRequest(for: csr, kind: kind, days: 90, source: "fuzz")
    }
    return 0
}

exit(securechannel_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv) { fuzzOne($0, $1) })
