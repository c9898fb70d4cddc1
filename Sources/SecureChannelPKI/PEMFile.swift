import Foundation
import SwiftASN1

/// Recognises PEM text in file contents.
enum PEMFile {
    /// The PEM blocks of `bytes`, or nil when the file is not PEM (then it is treated as DER).
    /// Throws a one-line error for PEM that is corrupt or truncated.
    static func documents(_ bytes: [UInt8], source: String) throws -> [PEMDocument]? {
        guard let text = String(bytes: bytes, encoding: .utf8), text.contains("-----BEGIN") else { return nil }
        do {
            return try PEMDocument.parseMultiple(pemString: text)
        } catch {
            throw PKIError.malformed(
                "\(source): the PEM data is corrupt or truncated; restore the file from its source")
        }
    }

    /// PEM text of `der` under `type`, lines of 64 characters. Linear in the size: swift-asn1's `pemString` measures
    /// String distances per line, which took 18 s for a CRL of 10,000 entries.
    static func encode(type: String, der: [UInt8]) -> String {
        let base64 = Data(der).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
        return "-----BEGIN \(type)-----\n\(base64)\n-----END \(type)-----\n"
    }
}
