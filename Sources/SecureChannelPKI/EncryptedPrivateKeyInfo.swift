import Crypto
import Foundation
import SwiftASN1
import _CryptoExtras

/// PKCS#8 `EncryptedPrivateKeyInfo` with PBES2 (RFC 8018): PBKDF2-HMAC-SHA-256 and AES-CBC.
///
/// This is the format `openssl pkcs8 -topk8 -v2 aes-256-cbc` writes and `openssl pkey -passin` reads.
/// The cryptography is swift-crypto's; this type only lays out and reads the ASN.1 structure.
struct EncryptedPrivateKeyInfo: Sendable {
    static let pemDiscriminator = "ENCRYPTED PRIVATE KEY"

    /// Rounds used when writing. OWASP's 2023 guidance for PBKDF2-HMAC-SHA256.
    static let writeRounds = 600_000
    /// The most rounds accepted when reading: refuses files crafted to burn CPU.
    static let maximumRounds = 10_000_000

    var salt: [UInt8]
    var rounds: Int
    var prf: ASN1ObjectIdentifier
    var cipher: ASN1ObjectIdentifier
    var iv: [UInt8]
    var encryptedData: [UInt8]

    /// Encrypts PKCS#8 DER bytes under `passphrase`.
    static func encrypt(pkcs8 plaintext: [UInt8], passphrase: [UInt8]) throws -> EncryptedPrivateKeyInfo {
        var salt = [UInt8](repeating: 0, count: 16)
        var generator = SystemRandomNumberGenerator()
        for i in salt.indices { salt[i] = generator.next() }
        let iv = AES._CBC.IV()
        let key = try KDF.Insecure.PBKDF2.deriveKey(
            from: passphrase, salt: salt, using: .sha256, outputByteCount: 32, rounds: writeRounds)
        let ciphertext = try AES._CBC.encrypt(plaintext, using: key, iv: iv)
        return EncryptedPrivateKeyInfo(
            salt: salt, rounds: writeRounds, prf: OID.hmacWithSHA256, cipher: OID.aes256CBC,
            iv: Array(iv), encryptedData: Array(ciphertext))
    }

    /// Decrypts to PKCS#8 DER bytes. Throws ``PKIError`` `wrongPassphrase` when the padding does not check out.
    func decrypt(passphrase: [UInt8]) throws -> [UInt8] {
        let hash: KDF.Insecure.PBKDF2.HashFunction
        switch prf {
        case OID.hmacWithSHA256: hash = .sha256
        case OID.hmacWithSHA384: hash = .sha384
        case OID.hmacWithSHA512: hash = .sha512
        case OID.hmacWithSHA1: hash = .insecureSHA1
        default:
            throw PKIError(
                .unsupported,
                "encrypted key uses an unsupported PBKDF2 hash (\(prf)); re-encrypt it with 'openssl pkcs8 -topk8 -v2 aes-256-cbc'"
            )
        }
        let keyLength: Int
        switch cipher {
        case OID.aes128CBC: keyLength = 16
        case OID.aes192CBC: keyLength = 24
        case OID.aes256CBC: keyLength = 32
        default:
            throw PKIError(
                .unsupported,
                "encrypted key uses an unsupported cipher (\(cipher)); re-encrypt it with 'openssl pkcs8 -topk8 -v2 aes-256-cbc'"
            )
        }
        guard rounds > 0, rounds <= Self.maximumRounds else {
            throw PKIError.malformed(
                "encrypted key asks for \(rounds) PBKDF2 rounds, outside 1...\(Self.maximumRounds)")
        }
        let key = try KDF.Insecure.PBKDF2.deriveKey(
            from: passphrase, salt: salt, using: hash, outputByteCount: keyLength, unsafeUncheckedRounds: rounds)
        do {
            let iv = try AES._CBC.IV(ivBytes: iv)
            return Array(try AES._CBC.decrypt(encryptedData, using: key, iv: iv))
        } catch {
            throw PKIError(.wrongPassphrase, "wrong passphrase: it does not decrypt the key")
        }
    }

    enum OID {
        static let pbes2: ASN1ObjectIdentifier = [1, 2, 840, 113_549, 1, 5, 13]
        static let pbkdf2: ASN1ObjectIdentifier = [1, 2, 840, 113_549, 1, 5, 12]
        static let scrypt: ASN1ObjectIdentifier = [1, 3, 6, 1, 4, 1, 11591, 4, 11]
        static let hmacWithSHA1: ASN1ObjectIdentifier = [1, 2, 840, 113_549, 2, 7]
        static let hmacWithSHA256: ASN1ObjectIdentifier = [1, 2, 840, 113_549, 2, 9]
        static let hmacWithSHA384: ASN1ObjectIdentifier = [1, 2, 840, 113_549, 2, 10]
        static let hmacWithSHA512: ASN1ObjectIdentifier = [1, 2, 840, 113_549, 2, 11]
        static let aes128CBC: ASN1ObjectIdentifier = [2, 16, 840, 1, 101, 3, 4, 1, 2]
        static let aes192CBC: ASN1ObjectIdentifier = [2, 16, 840, 1, 101, 3, 4, 1, 22]
        static let aes256CBC: ASN1ObjectIdentifier = [2, 16, 840, 1, 101, 3, 4, 1, 42]
    }
}

extension EncryptedPrivateKeyInfo: DERImplicitlyTaggable {
    static var defaultIdentifier: ASN1Identifier { .sequence }

    init(derEncoded node: ASN1Node, withIdentifier identifier: ASN1Identifier) throws {
        self = try DER.sequence(node, identifier: identifier) { nodes in
            guard let algorithm = nodes.next() else { throw PKIError.malformed("encrypted key: no algorithm") }
            let (kdf, cipher, iv) = try DER.sequence(algorithm, identifier: .sequence) { alg in
                let scheme = try ASN1ObjectIdentifier(derEncoded: &alg)
                guard scheme == OID.pbes2 else {
                    throw PKIError(
                        .unsupported,
                        "encrypted key uses \(scheme), not PBES2; re-encrypt it with 'openssl pkcs8 -topk8 -v2 aes-256-cbc'"
                    )
                }
                guard let parameters = alg.next() else {
                    throw PKIError.malformed("encrypted key: no PBES2 parameters")
                }
                return try DER.sequence(parameters, identifier: .sequence) { pbes2 in
                    guard let kdfNode = pbes2.next(), let cipherNode = pbes2.next() else {
                        throw PKIError.malformed("encrypted key: incomplete PBES2 parameters")
                    }
                    let kdf = try Self.parseKDF(kdfNode)
                    let (cipher, iv) = try DER.sequence(cipherNode, identifier: .sequence) { scheme in
                        (try ASN1ObjectIdentifier(derEncoded: &scheme), try ASN1OctetString(derEncoded: &scheme))
                    }
                    return (kdf, cipher, iv)
                }
            }
            let encrypted = try ASN1OctetString(derEncoded: &nodes)
            return EncryptedPrivateKeyInfo(
                salt: kdf.salt, rounds: kdf.rounds, prf: kdf.prf, cipher: cipher, iv: Array(iv.bytes),
                encryptedData: Array(encrypted.bytes))
        }
    }

    /// Reads `AlgorithmIdentifier { PBKDF2, PBKDF2-params }`.
    static func parseKDF(_ node: ASN1Node) throws -> (salt: [UInt8], rounds: Int, prf: ASN1ObjectIdentifier) {
        try DER.sequence(node, identifier: .sequence) { alg in
            let kdf = try ASN1ObjectIdentifier(derEncoded: &alg)
            guard kdf == OID.pbkdf2 else {
                throw PKIError(
                    .unsupported,
                    "encrypted key uses key derivation \(kdf), not PBKDF2; re-encrypt it with 'openssl pkcs8 -topk8 -v2 aes-256-cbc'"
                )
            }
            guard let parameters = alg.next() else { throw PKIError.malformed("encrypted key: no PBKDF2 parameters") }
            return try DER.sequence(parameters, identifier: .sequence) { nodes in
                let salt = try ASN1OctetString(derEncoded: &nodes)
                let rounds = try Int(derEncoded: &nodes)
                var prf = OID.hmacWithSHA1
                while let next = nodes.next() {
                    if next.identifier == .integer { continue }  // optional keyLength: implied by the cipher
                    prf = try DER.sequence(next, identifier: .sequence) { prfAlg in
                        let oid = try ASN1ObjectIdentifier(derEncoded: &prfAlg)
                        _ = prfAlg.next()  // NULL parameters
                        return oid
                    }
                }
                return (Array(salt.bytes), rounds, prf)
            }
        }
    }

    func serialize(into coder: inout DER.Serializer, withIdentifier identifier: ASN1Identifier) throws {
        try coder.appendConstructedNode(identifier: identifier) { coder in
            try coder.appendConstructedNode(identifier: .sequence) { coder in
                try coder.serialize(OID.pbes2)
                try coder.appendConstructedNode(identifier: .sequence) { coder in
                    try coder.appendConstructedNode(identifier: .sequence) { coder in
                        try coder.serialize(OID.pbkdf2)
                        try coder.appendConstructedNode(identifier: .sequence) { coder in
                            try coder.serialize(ASN1OctetString(contentBytes: salt[...]))
                            try coder.serialize(rounds)
                            try coder.appendConstructedNode(identifier: .sequence) { coder in
                                try coder.serialize(prf)
                                try coder.serialize(ASN1Null())
                            }
                        }
                    }
                    try coder.appendConstructedNode(identifier: .sequence) { coder in
                        try coder.serialize(cipher)
                        try coder.serialize(ASN1OctetString(contentBytes: iv[...]))
                    }
                }
            }
            try coder.serialize(ASN1OctetString(contentBytes: encryptedData[...]))
        }
    }
}
