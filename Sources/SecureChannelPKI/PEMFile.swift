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
}
