import Crypto
import Foundation
import SwiftASN1
import X509
import _CryptoExtras

/// Reads and writes private keys in the formats OpenSSL and SecureChannel use.
///
/// Reads PKCS#8 (`PRIVATE KEY`), encrypted PKCS#8 (`ENCRYPTED PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) and
/// SEC1 (`EC PRIVATE KEY`, also after an `EC PARAMETERS` block), in PEM or DER. Writes PKCS#8 PEM, optionally
/// encrypted with PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC).
public enum PrivateKeyIO {
    /// Parses a private key from file contents. `passphrase` is needed only for an encrypted key.
    public static func parse(_ bytes: [UInt8], passphrase: [UInt8]? = nil, source: String) throws
        -> Certificate.PrivateKey
    {
        if let documents = try PEMFile.documents(bytes, source: source) {
            let keyDocuments = documents.filter { $0.discriminator.hasSuffix("PRIVATE KEY") }
            guard let document = keyDocuments.first else {
                let found = documents.map(\.discriminator).joined(separator: ", ")
                throw PKIError.malformed("\(source): holds no private key (found: \(found)); pass the key file")
            }
            guard keyDocuments.count == 1 else {
                throw PKIError.malformed("\(source): holds \(keyDocuments.count) private keys; keep one key per file")
            }
            return try parse(document: document, passphrase: passphrase, source: source)
        }
        return try parseDER(bytes, passphrase: passphrase, source: source)
    }

    /// Parses one PEM block holding a private key.
    static func parse(document: PEMDocument, passphrase: [UInt8]?, source: String) throws -> Certificate.PrivateKey {
        switch document.discriminator {
        case EncryptedPrivateKeyInfo.pemDiscriminator:
            return try decrypt(document.derBytes, passphrase: passphrase, source: source)
        case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
            do {
                return try Certificate.PrivateKey(pemDocument: document)
            } catch {
                throw PKIError.malformed(
                    "\(source): the \(document.discriminator) block is not a usable key (\(error)); RSA keys must be at least 2048 bits"
                )
            }
        default:
            throw PKIError(
                .unsupported,
                "\(source): '\(document.discriminator)' keys are not supported; convert with 'openssl pkcs8 -topk8'")
        }
    }

    static func parseDER(_ der: [UInt8], passphrase: [UInt8]?, source: String) throws -> Certificate.PrivateKey {
        if (try? EncryptedPrivateKeyInfo(derEncoded: der)) != nil {
            return try decrypt(der, passphrase: passphrase, source: source)
        }
        if let key = try? Certificate.PrivateKey(derBytes: der) { return key }
        if let key = try? Certificate.PrivateKey(pemDocument: PEMDocument(type: "RSA PRIVATE KEY", derBytes: der)) {
            return key
        }
        if let key = try? Certificate.PrivateKey(pemDocument: PEMDocument(type: "EC PRIVATE KEY", derBytes: der)) {
            return key
        }
        throw PKIError.malformed("\(source): not a private key in PEM or DER (PKCS#8, PKCS#1 or SEC1); check the file")
    }

    static func decrypt(_ der: [UInt8], passphrase: [UInt8]?, source: String) throws -> Certificate.PrivateKey {
        let info: EncryptedPrivateKeyInfo
        do {
            info = try EncryptedPrivateKeyInfo(derEncoded: der)
        } catch let error as PKIError {
            throw PKIError(error.code, "\(source): \(error.message)")
        } catch {
            throw PKIError.malformed("\(source): the encrypted key is corrupt or truncated")
        }
        guard let passphrase else {
            throw PKIError(
                .passphraseRequired,
                "\(source) is encrypted; give --passphrase-file FILE or set SECURECHANNEL_CA_PASSPHRASE")
        }
        let plaintext: [UInt8]
        do {
            plaintext = try info.decrypt(passphrase: passphrase)
        } catch let error as PKIError {
            throw PKIError(error.code, "\(source): \(error.message)")
        }
        do {
            return try Certificate.PrivateKey(derBytes: plaintext)
        } catch {
            // AES-CBC padding passes by chance for about 1 in 256 wrong passphrases.
            throw PKIError(.wrongPassphrase, "\(source): wrong passphrase: it does not decrypt the key")
        }
    }

    /// The key as PKCS#8 DER (`PrivateKeyInfo`), whatever its type.
    public static func pkcs8DER(_ key: Certificate.PrivateKey) throws -> [UInt8] {
        let document = try key.serializeAsPEM()
        switch document.discriminator {
        case "PRIVATE KEY":
            return document.derBytes
        case "RSA PRIVATE KEY":
            return Array(try _RSA.Signing.PrivateKey(derRepresentation: document.derBytes).pkcs8DERRepresentation)
        default:
            throw PKIError(.unsupported, "cannot write a '\(document.discriminator)' key as PKCS#8")
        }
    }

    /// PKCS#8 PEM text for the key; encrypted (PBES2, AES-256-CBC) when a passphrase is given.
    public static func pem(_ key: Certificate.PrivateKey, passphrase: [UInt8]? = nil) throws -> String {
        let der = try pkcs8DER(key)
        guard let passphrase else {
            return PEMDocument(type: "PRIVATE KEY", derBytes: der).pemString + "\n"
        }
        let info = try EncryptedPrivateKeyInfo.encrypt(pkcs8: der, passphrase: passphrase)
        var serializer = DER.Serializer()
        try serializer.serialize(info)
        return PEMDocument(type: EncryptedPrivateKeyInfo.pemDiscriminator, derBytes: serializer.serializedBytes)
            .pemString + "\n"
    }
}
