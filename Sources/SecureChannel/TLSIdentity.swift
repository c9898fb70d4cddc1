import NIOSSL
import SecureChannelPKI
import X509

/// Our own certificate chain and private key, checked to belong together.
public struct TLSIdentity: Sendable {
    /// Leaf first, then any intermediates.
    public let chain: [Certificate]
    package let privateKey: Certificate.PrivateKey
    package let nioChain: [NIOSSLCertificate]
    package let nioKey: NIOSSLPrivateKey
    /// Where the certificate came from (its file), for messages.
    public let source: String
    /// What the user should know about the files, e.g. a key readable by others.
    public internal(set) var warnings: [String] = []

    /// The leaf certificate.
    public var leaf: Certificate { chain[0] }

    /// Builds an identity from parsed values; throws if the key does not belong to the leaf.
    public init(chain: [Certificate], privateKey: Certificate.PrivateKey, source: String = "certificate") throws {
        guard let leaf = chain.first else { throw SecureChannelError(.configuration, "\(source) holds no certificate") }
        guard privateKey.publicKey == leaf.publicKey else {
            throw SecureChannelError(
                .configuration, "the key does not belong to \(source); pass the key issued with this certificate")
        }
        self.chain = chain
        self.privateKey = privateKey
        self.source = source
        do {
            nioChain = try chain.map { try NIOSSLCertificate(bytes: CertificateIO.der($0), format: .der) }
            nioKey = try NIOSSLPrivateKey(bytes: Array(PrivateKeyIO.pem(privateKey).utf8), format: .pem)
        } catch {
            throw SecureChannelError(.configuration, "the TLS stack cannot load \(source) (\(error))")
        }
    }

    /// Reads `--cert` and `--key` files (PEM or DER; keys PKCS#8, encrypted PKCS#8, PKCS#1 or SEC1).
    public static func load(certificateFile: String, keyFile: String, passphrase: [UInt8]? = nil) throws -> TLSIdentity
    {
        let chain = try CertificateIO.parseCertificates(try SecureFile.read(certificateFile), source: certificateFile)
        let key = try PrivateKeyIO.parse(try SecureFile.read(keyFile), passphrase: passphrase, source: keyFile)
        guard key.publicKey == chain[0].publicKey else {
            throw SecureChannelError(
                .configuration,
                "\(keyFile) does not belong to \(certificateFile); pass the key issued with this certificate")
        }
        var identity = try TLSIdentity(chain: chain, privateKey: key, source: certificateFile)
        if let warning = SecureFile.keyExposureWarning(keyFile) { identity.warnings.append(warning) }
        return identity
    }
}

/// The CA certificates a peer must chain to. Only these: never the system's roots.
public struct TrustAnchors: Sendable {
    /// The CA certificates.
    public let certificates: [Certificate]
    let nioCertificates: [NIOSSLCertificate]

    /// Trusts exactly `certificates`, which must be CA certificates.
    public init(_ certificates: [Certificate], source: String = "the CA file") throws {
        guard !certificates.isEmpty else {
            throw SecureChannelError(
                .configuration, "no CA certificate given: pass the certificate(s) of the CA peers must chain to")
        }
        for certificate in certificates {
            if case .notCertificateAuthority = try? certificate.extensions.basicConstraints {
                throw SecureChannelError(
                    .configuration,
                    "\(source) holds \(certificate.subject), which is not a CA certificate (CA:FALSE); pass the CA's certificate (ca.crt)"
                )
            }
        }
        self.certificates = certificates
        nioCertificates = try certificates.map { try NIOSSLCertificate(bytes: CertificateIO.der($0), format: .der) }
    }

    /// Reads a `--ca` file (PEM bundle or DER).
    public static func load(file: String) throws -> TrustAnchors {
        try TrustAnchors(CertificateIO.parseCertificates(try SecureFile.read(file), source: file), source: file)
    }
}
