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

/// A certificate signing request (PKCS#10) as `cert inspect` shows it.
public struct RequestDescription: Codable, Sendable, Equatable {
    /// The subject asked for.
    public var subject: String
    /// The subjectAltName entries asked for (`DNS:…`, `IP:…`, `email:…`, `URI:…`).
    public var subjectAlternativeNames: [String]
    /// Key algorithm, e.g. `ECDSA P-256`.
    public var keyType: String
    /// Key size in bits.
    public var keyBits: Int
    /// SHA-256 of the public key's SubjectPublicKeyInfo.
    public var publicKeySHA256: String
    /// Every extension requested, each as a short text (`subjectAltName`, `basicConstraints CA:TRUE`, …).
    public var requestedExtensions: [String]
    /// Whether the request's self-signature holds (its maker has the private key).
    public var signatureValid: Bool
    /// Signature algorithm.
    public var signatureAlgorithm: String
    /// Problems a CA would refuse it for.
    public var warnings: [String]

    /// Describes `csr`.
    public init(_ csr: CertificateSigningRequest) throws {
        subject = csr.subject.description
        let extensions = (try? csr.attributes.extensionRequest?.extensions) ?? Certificate.Extensions()
        subjectAlternativeNames = CertificateDescription.alternativeNames(in: extensions)
        let info = csr.publicKey.keyDescription
        keyType = info.algorithm
        keyBits = info.bits
        publicKeySHA256 = try csr.publicKey.spkiSHA256()
        signatureValid = csr.publicKey.isValidSignature(csr.signature, for: csr)
        signatureAlgorithm = csr.signatureAlgorithm.description.replacingOccurrences(
            of: "SignatureAlgorithm.", with: "")
        var requested: [String] = []
        var warnings: [String] = []
        for ext in extensions {
            switch ext.oid {
            case .X509ExtensionID.subjectAlternativeName: requested.append("subjectAltName")
            case .X509ExtensionID.basicConstraints:
                if case .isCertificateAuthority = try? BasicConstraints(ext) {
                    requested.append("basicConstraints CA:TRUE")
                    warnings.append("asks to be a CA: 'securechannel ca sign' refuses it")
                } else {
                    requested.append("basicConstraints CA:FALSE")
                }
            case .X509ExtensionID.keyUsage:
                let names = CertificateDescription.keyUsageNames(extensions)
                requested.append("keyUsage " + names.joined(separator: ","))
            case .X509ExtensionID.extendedKeyUsage:
                let names = CertificateDescription.extendedKeyUsageNames(extensions)
                requested.append("extendedKeyUsage " + names.joined(separator: ","))
            default: requested.append("\(ext.oid)" + (ext.critical ? " (critical)" : ""))
            }
        }
        if !signatureValid { warnings.insert("the self-signature does not hold: the request was altered", at: 0) }
        requestedExtensions = requested
        self.warnings = warnings
    }
}

/// Everything found in one file: certificates, private keys, CRLs and certificate requests, in order.
public struct FileDescription: Codable, Sendable, Equatable {
    /// Certificates, in file order.
    public var certificates: [CertificateDescription]
    /// Private keys, in file order.
    public var keys: [KeyDescription]
    /// CRLs, in file order.
    public var crls: [CRLDescription]
    /// Certificate signing requests, in file order.
    public var requests: [RequestDescription]

    /// Reads a PEM bundle or a DER file. Encrypted keys are decrypted when `passphrase` is given.
    public init(bytes: [UInt8], source: String, passphrase: [UInt8]? = nil, now: Date = Date()) throws {
        certificates = []
        keys = []
        crls = []
        requests = []
        if let documents = try PEMFile.documents(bytes, source: source) {
            for document in documents {
                switch document.discriminator {
                case "CERTIFICATE", "TRUSTED CERTIFICATE":
                    let certificate = try CertificateIO.parseCertificates(
                        Array(document.pemString.utf8), source: source)[0]
                    certificates.append(try CertificateDescription(certificate, now: now))
                case let kind where kind.hasSuffix("PRIVATE KEY"):
                    keys.append(try Self.describeKey(document: document, source: source, passphrase: passphrase))
                case "CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST":
                    do {
                        requests.append(
                            try RequestDescription(CertificateSigningRequest(derEncoded: document.derBytes)))
                    } catch let error as PKIError {
                        throw error
                    } catch {
                        throw PKIError.malformed("\(source) holds an unreadable certificate request: \(error)")
                    }
                case "X509 CRL":
                    crls.append(
                        CRLDescription(try CertificateRevocationList.parse(document.derBytes, source: source), now: now)
                    )
                default:
                    continue  // EC PARAMETERS and the like carry nothing of their own
                }
            }
            if certificates.isEmpty && keys.isEmpty && crls.isEmpty && requests.isEmpty {
                let found = documents.map(\.discriminator).joined(separator: ", ")
                throw PKIError.malformed(
                    "\(source) holds no certificate, private key, CRL or certificate request (found: \(found))")
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
        if let csr = try? CertificateSigningRequest(derEncoded: bytes) {
            requests = [try RequestDescription(csr)]
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
                "\(source): not a certificate, private key, CRL or certificate request in PEM or DER form; check the file"
            )
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
    /// SHA-256 of the SubjectPublicKeyInfo as 64 upper-case hex digits without separators (cheap: once per
    /// handshake, for identities and key pins).
    public var spkiSHA256Hex: String {
        var serializer = DER.Serializer()
        guard (try? serializer.serialize(self)) != nil else { return "" }
        return SerialNumbers.hex(SHA256.hash(data: serializer.serializedBytes))
    }

    public func spkiSHA256() throws -> String {
        var serializer = DER.Serializer()
        try serializer.serialize(self)
        return SerialNumbers.hex(SHA256.hash(data: serializer.serializedBytes), separator: UInt8(ascii: ":"))
    }
}
