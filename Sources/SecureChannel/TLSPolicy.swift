import Foundation
import NIOSSL

/// The TLS parameters SecureChannel allows: TLS 1.3 by default, TLS 1.2 only when asked for and then only
/// ECDHE with AEAD ciphers; hybrid post-quantum key exchange first.
public struct TLSPolicy: Sendable, Hashable {
    /// The oldest protocol version accepted.
    public enum MinimumVersion: String, Sendable, CaseIterable {
        /// TLS 1.2 (ECDHE + AEAD suites only) and TLS 1.3.
        case tls12 = "1.2"
        /// TLS 1.3 only (the default).
        case tls13 = "1.3"
    }

    /// The oldest version accepted.
    public var minimumVersion: MinimumVersion
    /// Where to write TLS secrets for decrypting captures; nil (the default): nowhere.
    public var keyLog: KeyLog?

    /// TLS 1.3 only.
    public static let `default` = TLSPolicy(minimumVersion: .tls13)

    /// A policy with the given minimum version.
    public init(minimumVersion: MinimumVersion = .tls13) {
        self.minimumVersion = minimumVersion
    }

    /// TLS 1.2 suites allowed when TLS 1.2 is enabled: forward secret (ECDHE) and authenticated encryption.
    public static let tls12CipherSuites: [NIOTLSCipher] = [
        .TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, .TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        .TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        .TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, .TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        .TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ]

    /// Key-exchange groups in preference order: X25519MLKEM768 (hybrid post-quantum), then X25519 and P-256.
    public static let groups: [NIOTLSCurve] = [.x25519_MLKEM768, .x25519, .secp256r1, .secp384r1]

    /// Signature algorithms accepted from peers (Ed25519 must be listed explicitly for BoringSSL).
    public static let signatureAlgorithms: [SignatureAlgorithm] = [
        .ecdsaSecp256R1Sha256, .ecdsaSecp384R1Sha384, .ecdsaSecp521R1Sha512, .ed25519,
        .rsaPssRsaeSha256, .rsaPssRsaeSha384, .rsaPssRsaeSha512,
        .rsaPkcs1Sha256, .rsaPkcs1Sha384, .rsaPkcs1Sha512,
    ]

    /// Applies the policy to a NIOSSL configuration (never leaves NIOSSL's TLS 1.0 default in place).
    package func apply(to configuration: inout TLSConfiguration) {
        configuration.minimumTLSVersion = minimumVersion == .tls13 ? .tlsv13 : .tlsv12
        configuration.maximumTLSVersion = .tlsv13
        configuration.cipherSuiteValues = Self.tls12CipherSuites
        configuration.curves = Self.groups
        configuration.verifySignatureAlgorithms = Self.signatureAlgorithms
        configuration.renegotiationSupport = .none
        if let keyLog { configuration.keyLogCallback = keyLog.callback }
    }

    /// The IANA name of a cipher suite code point.
    public static func cipherName(_ value: UInt16) -> String {
        switch value {
        case 0x1301: return "TLS_AES_128_GCM_SHA256"
        case 0x1302: return "TLS_AES_256_GCM_SHA384"
        case 0x1303: return "TLS_CHACHA20_POLY1305_SHA256"
        case 0xC02B: return "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
        case 0xC02C: return "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"
        case 0xC02F: return "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
        case 0xC030: return "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"
        case 0xCCA8: return "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"
        case 0xCCA9: return "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
        default: return String(format: "0x%04X", value)
        }
    }

    /// The IANA name of a key-exchange group code point.
    public static func groupName(_ value: UInt16) -> String {
        switch value {
        case 0x11EC: return "X25519MLKEM768"
        case 0x001D: return "X25519"
        case 0x0017: return "P-256"
        case 0x0018: return "P-384"
        case 0x0019: return "P-521"
        default: return String(format: "0x%04X", value)
        }
    }
}

extension TLSVersion {
    /// `TLSv1.3` and so on.
    var displayName: String {
        switch self {
        case .tlsv1: return "TLSv1.0"
        case .tlsv11: return "TLSv1.1"
        case .tlsv12: return "TLSv1.2"
        case .tlsv13: return "TLSv1.3"
        }
    }
}
