// The certificate loader (PEM bundles or DER), then what `cert inspect` does with each certificate.
import FuzzShim
import SecureChannelPKI

#if canImport(Glibc)
import Glibc
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    guard let certificates = try? CertificateIO.parseCertificates(Array(UnsafeBufferPointer(start: data, count: size)), source: "fuzz") else {
        return 0
    }
    for certificate in certificates {
        _ = try? CertificateDescription(certificate)
    }
    return 0
}

exit(securechannel_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv) { fuzzOne($0, $1) })
