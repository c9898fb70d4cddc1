import Foundation
import SecureChannelPKI

/// Everything a TLS endpoint loads from disk: its identity, the CAs it trusts, and the CRLs it enforces.
public struct TLSMaterial: Sendable {
    /// Our certificate chain and key.
    public var identity: TLSIdentity
    /// The CAs peers must chain to.
    public var trust: TrustAnchors
    /// CRLs to enforce, if any.
    public var revocation: RevocationList?

    /// Material from values.
    public init(identity: TLSIdentity, trust: TrustAnchors, revocation: RevocationList? = nil) {
        self.identity = identity
        self.trust = trust
        self.revocation = revocation
    }
}

/// Where a TLS endpoint's material lives, so that it can be loaded again when the files change.
public struct TLSMaterialFiles: Sendable, Hashable {
    /// `--cert`.
    public var certificate: String
    /// `--key`.
    public var key: String
    /// `--ca`.
    public var ca: String
    /// `--crl`, repeatable.
    public var crls: [String]
    /// `--crl-expired allow`.
    public var allowExpiredCRL: Bool

    /// Names the files.
    public init(certificate: String, key: String, ca: String, crls: [String] = [], allowExpiredCRL: Bool = false) {
        self.certificate = certificate
        self.key = key
        self.ca = ca
        self.crls = crls
        self.allowExpiredCRL = allowExpiredCRL
    }

    /// Every file to watch.
    public var paths: [String] { [certificate, key, ca] + crls }

    /// Loads and checks everything; throws a one-line error naming the file at fault.
    public func load() throws -> TLSMaterial {
        let identity = try TLSIdentity.load(certificateFile: certificate, keyFile: key)
        let trust = try TrustAnchors.load(file: ca)
        let revocation =
            crls.isEmpty ? nil : try RevocationList.load(files: crls, trust: trust, allowExpired: allowExpiredCRL)
        return TLSMaterial(identity: identity, trust: trust, revocation: revocation)
    }
}
