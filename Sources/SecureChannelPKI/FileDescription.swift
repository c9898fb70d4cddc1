import Crypto
import Foundation
import SwiftASN1
import X509

/// A private key as `cert inspect` shows it.
public struct KeyDescription: Codable, Sendable, Equatable {
    /// The container format: `PKCS#8`, `encrypted PKCS#8`, `PKCS#1` or `SEC1`.
    public var format: String
    /// Key algorithm, e.g. `ECDSA P-256`; nil while the key is encrypted and no passphrase was given.
    public var keyType: String?
    /// Key size in bits; nil while encrypted.
    public var keyBits: Int?
    /// SHA-256 of the public key's SubjectPublicKeyInfo (compare with a certificate's); nil while encrypted.
    public var publicKeySHA256: String?
    /// Problems or hints.
    public var warnings: [String]

}

/// A CRL as `cert inspect` shows it.
public struct CRLDescription: Codable, Sendable, Equatable {
    /// The issuing CA.
    public var issuer: String
    /// CRL number (hex).
    public var number: String?
    /// When it was made.
    public var thisUpdate: Date
    /// When the next is due.
    public var nextUpdate: Date?
    /// Whether nextUpdate has passed.
    public var expired: Bool
    /// The authority key identifier (hex).
    public var authorityKeyIdentifier: String?
    /// Signature algorithm.
    public var signatureAlgorithm: String
    /// Revoked certificates.
    public var entries: [CertificateRevocationList.Entry]

    /// Describes `crl` as of `now`.
    public init(_ crl: CertificateRevocationList, now: Date = Date()) {
        issuer = crl.issuer.description
        number = crl.number
        thisUpdate = crl.thisUpdate
        nextUpdate = crl.nextUpdate
        expired = crl.isExpired(at: now)
        authorityKeyIdentifier = crl.authorityKeyIdentifier
        signatureAlgorithm = crl.signatureAlgorithm.description.replacingOccurrences(
            of: "SignatureAlgorithm.", with: "")
        entries = crl.entries
    }

}

/// Everything found in one file: certificates, private keys and CRLs, in order.
public struct FileDescription: Codable, Sendable, Equatable {
    /// Certificates, in file order.
    public var certificates: [CertificateDescription]
    /// Private keys, in file order.
    public var keys: [KeyDescription]
    /// CRLs, in file order.
    public var crls: [CRLDescription]

    /// Reads a PEM bundle or a DER file. Encrypted keys are decrypted when `passphrase` is given.
    public init(bytes: [UInt8], source: String, passphrase: [UInt8]? = nil, now: Date = Date()) throws {
        certificates = []
        keys = []
        crls = []
        if let documents = try PEMFile.documents(bytes, source: source) {
            for document in documents {
                switch document.discriminator {
                case "CERTIFICATE", "TRUSTED CERTIFICATE":
                    let certificate = try CertificateIO.parseCertificates(
                        Array(document.pemString.utf8), source: source)[0]
                    certificates.append(try CertificateDescription(certificate, now: now))
                case let kind where kind.hasSuffix("PRIVATE KEY"):
                    keys.append(try Self.describeKey(document: document, source: source, passphrase: passphrase))
                case "X509 CRL":
                    crls.append(
                        CRLDescription(try CertificateRevocationList.parse(document.derBytes, source: source), now: now)
                    )
                default:
                    continue  // EC PARAMETERS and the like carry nothing of their own
                }
            }
            if certificates.isEmpty && keys.isEmpty && crls.isEmpty {
                let found = documents.map(\.discriminator).joined(separator: ", ")
                throw PKIError.malformed("\(source) holds no certificate, private key or CRL (found: \(found))")
            }
            return
        }
        if let certificate = try? Certificate(derEncoded: bytes) {
            certificates = [try CertificateDescription(certificate, now: now)]
            return
        }
        if let crl = try? CertificateRevocationList(derEncoded: bytes) {
            crls = [CRLDescription(crl, now: now)]
            return
        }
        if (try? EncryptedPrivateKeyInfo(derEncoded: bytes)) != nil {
            keys = [
                try Self.describeKey(
                    document: PEMDocument(type: EncryptedPrivateKeyInfo.pemDiscriminator, derBytes: bytes),
                    source: source, passphrase: passphrase)
            ]
            return
        }
        do {
            let key = try PrivateKeyIO.parseDER(bytes, passphrase: passphrase, source: source)
            keys = [try Self.describe(key, format: "DER")]
        } catch {
            throw PKIError.malformed(
                "\(source): not a certificate, private key or CRL in PEM or DER form; check the file")
        }
    }

    static func describeKey(document: PEMDocument, source: String, passphrase: [UInt8]?) throws -> KeyDescription {
        let format: String
        switch document.discriminator {
        case EncryptedPrivateKeyInfo.pemDiscriminator: format = "encrypted PKCS#8"
        case "RSA PRIVATE KEY": format = "PKCS#1"
        case "EC PRIVATE KEY": format = "SEC1"
        default: format = "PKCS#8"
        }
        if format == "encrypted PKCS#8" && passphrase == nil {
            return KeyDescription(
                format: format, keyType: nil, keyBits: nil, publicKeySHA256: nil,
                warnings: ["encrypted: pass --passphrase-file FILE to see the key"])
        }
        let key = try PrivateKeyIO.parse(document: document, passphrase: passphrase, source: source)
        return try describe(key, format: format)
    }

    static func describe(_ key: Certificate.PrivateKey, format: String) throws -> KeyDescription {
        let info = key.publicKey.keyDescription
        return KeyDescription(
            format: format, keyType: info.algorithm, keyBits: info.bits,
            publicKeySHA256: try key.publicKey.spkiSHA256(), warnings: [])
    }
}

extension Certificate.PublicKey {
    /// SHA-256 of the DER SubjectPublicKeyInfo, colon-separated upper-case hex (the usual SPKI pin).
    public func spkiSHA256() throws -> String {
        var serializer = DER.Serializer()
        try serializer.serialize(self)
        return SHA256.hash(data: serializer.serializedBytes).map { String(format: "%02X", $0) }.joined(separator: ":")
    }
}
