import Crypto
import Foundation
import SwiftASN1
import X509

/// Reads certificates (PEM bundles or DER) and writes PEM.
public enum CertificateIO {
    /// Every certificate in a PEM bundle, or the single certificate of a DER file.
    public static func parseCertificates(_ bytes: [UInt8], source: String) throws -> [Certificate] {
        if let documents = try PEMFile.documents(bytes, source: source) {
            let certificates = documents.filter {
                $0.discriminator == "CERTIFICATE" || $0.discriminator == "TRUSTED CERTIFICATE"
            }
            if certificates.isEmpty {
                if documents.contains(where: { $0.discriminator.hasSuffix("PRIVATE KEY") }) {
                    throw PKIError.malformed("\(source) holds a private key, not a certificate; pass the .crt file")
                }
                let found = documents.map(\.discriminator).joined(separator: ", ")
                throw PKIError.malformed("\(source) holds no certificate (found: \(found))")
            }
            return try certificates.enumerated().map { index, document in
                do {
                    return try Certificate(derEncoded: document.derBytes)
                } catch {
                    throw PKIError.malformed("\(source): certificate \(index + 1) is not valid X.509 (\(error))")
                }
            }
        }
        do {
            return [try Certificate(derEncoded: bytes)]
        } catch {
            throw PKIError.malformed(
                "\(source): not a certificate in PEM or DER form; check that you passed the right file")
        }
    }

    /// PEM text for a list of certificates, each block ending in a newline.
    public static func pem(_ certificates: [Certificate]) throws -> String {
        try certificates.map { PEMFile.encode(type: "CERTIFICATE", der: try der($0)) }.joined()
    }

    /// DER bytes of a certificate.
    public static func der(_ certificate: Certificate) throws -> [UInt8] {
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        return serializer.serializedBytes
    }

    /// SHA-256 of `bytes` as lower-case hex without separators (Envoy's XFCC `Hash=`).
    public static func sha256Hex(_ bytes: [UInt8]) -> String {
        SerialNumbers.hex(SHA256.hash(data: bytes), separator: nil, lowercase: true)
    }
}
