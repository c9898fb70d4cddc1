import Crypto
import X509
import _CryptoExtras

/// The kinds of key SecureChannel generates.
public enum KeyType: String, CaseIterable, Sendable, Codable {
    /// ECDSA over NIST P-256 (the default: fast, universally supported).
    case ecdsaP256 = "ecdsa-p256"
    /// ECDSA over NIST P-384.
    case ecdsaP384 = "ecdsa-p384"
    /// Ed25519 signatures.
    case ed25519 = "ed25519"
    /// RSA with a 2048-bit modulus.
    case rsa2048 = "rsa-2048"
    /// RSA with a 3072-bit modulus.
    case rsa3072 = "rsa-3072"
    /// RSA with a 4096-bit modulus.
    case rsa4096 = "rsa-4096"

    /// The default key type: ECDSA P-256.
    public static let `default` = KeyType.ecdsaP256

    /// Parses a user-supplied name, with an error that lists the valid names.
    public init(parsing name: String) throws {
        guard let type = KeyType(rawValue: name.lowercased()) else {
            let names = KeyType.allCases.map(\.rawValue).joined(separator: ", ")
            throw PKIError.invalidArgument("unknown key type '\(name)'; use one of: \(names)")
        }
        self = type
    }

    /// The type of an existing public key (from a CSR), or nil for a key type we do not issue for (P-521, RSA
    /// under 2048 bits or of an odd size).
    public init?(_ publicKey: Certificate.PublicKey) {
        switch publicKey.keyDescription {
        case ("ECDSA P-256", _): self = .ecdsaP256
        case ("ECDSA P-384", _): self = .ecdsaP384
        case ("Ed25519", _): self = .ed25519
        case ("RSA", 2048): self = .rsa2048
        case ("RSA", 3072): self = .rsa3072
        case ("RSA", 4096): self = .rsa4096
        default: return nil
        }
    }

    /// Whether this is an RSA key type.
    public var isRSA: Bool {
        switch self {
        case .rsa2048, .rsa3072, .rsa4096: return true
        default: return false
        }
    }

    /// Generates a fresh private key of this type.
    public func generate() throws -> Certificate.PrivateKey {
        switch self {
        case .ecdsaP256: return Certificate.PrivateKey(P256.Signing.PrivateKey())
        case .ecdsaP384: return Certificate.PrivateKey(P384.Signing.PrivateKey())
        case .ed25519: return Certificate.PrivateKey(Curve25519.Signing.PrivateKey())
        case .rsa2048: return Certificate.PrivateKey(try _RSA.Signing.PrivateKey(keySize: .bits2048))
        case .rsa3072: return Certificate.PrivateKey(try _RSA.Signing.PrivateKey(keySize: .bits3072))
        case .rsa4096: return Certificate.PrivateKey(try _RSA.Signing.PrivateKey(keySize: .bits4096))
        }
    }
}

extension Certificate.PublicKey {
    /// A human description of the key: algorithm, curve or size.
    public var keyDescription: (algorithm: String, bits: Int) {
        if P256.Signing.PublicKey(self) != nil { return ("ECDSA P-256", 256) }
        if P384.Signing.PublicKey(self) != nil { return ("ECDSA P-384", 384) }
        if P521.Signing.PublicKey(self) != nil { return ("ECDSA P-521", 521) }
        if Curve25519.Signing.PublicKey(self) != nil { return ("Ed25519", 256) }
        if let rsa = _RSA.Signing.PublicKey(self) { return ("RSA", rsa.keySizeInBits) }
        return ("unknown", 0)
    }

    /// Whether this is an RSA key (which then also needs keyEncipherment for TLS 1.2 RSA key exchange).
    var isRSA: Bool { _RSA.Signing.PublicKey(self) != nil }
}

extension Certificate.PrivateKey {
    /// The signature algorithm a certificate signed by this key should carry (SHA-256 or stronger).
    var preferredSignatureAlgorithm: Certificate.SignatureAlgorithm {
        let key = publicKey
        if P384.Signing.PublicKey(key) != nil { return .ecdsaWithSHA384 }
        if P521.Signing.PublicKey(key) != nil { return .ecdsaWithSHA512 }
        if Curve25519.Signing.PublicKey(key) != nil { return .ed25519 }
        if _RSA.Signing.PublicKey(key) != nil { return .sha256WithRSAEncryption }
        return .ecdsaWithSHA256
    }
}
