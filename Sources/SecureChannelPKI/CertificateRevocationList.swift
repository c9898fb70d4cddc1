import Foundation
import SwiftASN1
import X509

/// An X.509 v2 certificate revocation list (RFC 5280 §5): built and signed with swift-certificates' keys, laid out
/// with swift-asn1 (neither library has CRL types), and parsed, including CRLs made by `openssl ca -gencrl`.
public struct CertificateRevocationList: Sendable, Equatable {
    /// One revoked certificate.
    public struct Entry: Sendable, Equatable, Codable {
        /// Serial number, upper-case hex without leading zero bytes.
        public var serial: String
        /// When it was revoked.
        public var revocationDate: Date
        /// Why, when the entry says.
        public var reason: RevocationReason?

        /// Creates an entry.
        public init(serial: String, revocationDate: Date, reason: RevocationReason?) {
            self.serial = Self.normalized(serial)
            self.revocationDate = revocationDate
            self.reason = reason
        }

        static func normalized(_ hex: String) -> String {
            var text = hex.uppercased().replacingOccurrences(of: ":", with: "")
            while text.hasPrefix("00") && text.count > 2 { text.removeFirst(2) }
            return text
        }
    }

    /// The CA that signed it.
    public var issuer: DistinguishedName
    /// When it was made.
    public var thisUpdate: Date
    /// When the next one is due; past that date this one is expired.
    public var nextUpdate: Date?
    /// The CRL number, in hex.
    public var number: String?
    /// The authorityKeyIdentifier, hex.
    public var authorityKeyIdentifier: String?
    /// The revoked certificates.
    public var entries: [Entry]
    /// The signature algorithm.
    public var signatureAlgorithm: Certificate.SignatureAlgorithm
    /// The DER encoding.
    public let derBytes: [UInt8]
    let tbsBytes: ArraySlice<UInt8>
    let signatureBytes: [UInt8]

    /// OIDs used in CRLs.
    enum OID {
        static let crlNumber: ASN1ObjectIdentifier = [2, 5, 29, 20]
        static let reasonCode: ASN1ObjectIdentifier = [2, 5, 29, 21]
        static let authorityKeyIdentifier: ASN1ObjectIdentifier = [2, 5, 29, 35]
        static let algorithms: [(Certificate.SignatureAlgorithm, ASN1ObjectIdentifier, Bool)] = [
            (.ecdsaWithSHA256, [1, 2, 840, 10045, 4, 3, 2], false),
            (.ecdsaWithSHA384, [1, 2, 840, 10045, 4, 3, 3], false),
            (.ecdsaWithSHA512, [1, 2, 840, 10045, 4, 3, 4], false),
            (.ed25519, [1, 3, 101, 112], false),
            (.sha256WithRSAEncryption, [1, 2, 840, 113_549, 1, 1, 11], true),
            (.sha384WithRSAEncryption, [1, 2, 840, 113_549, 1, 1, 12], true),
            (.sha512WithRSAEncryption, [1, 2, 840, 113_549, 1, 1, 13], true),
        ]
    }

    // MARK: - Signing

    /// Builds and signs a CRL for `authority`'s certificate.
    public static func sign(
        issuer certificate: Certificate, key: Certificate.PrivateKey, entries: [Entry], number: Int,
        thisUpdate: Date, nextUpdate: Date
    ) throws -> CertificateRevocationList {
        let algorithm = key.preferredSignatureAlgorithm
        guard let (oid, nullParameters) = OID.algorithms.first(where: { $0.0 == algorithm }).map({ ($0.1, $0.2) })
        else {
            throw PKIError(.unsupported, "cannot sign a CRL with \(algorithm)")
        }
        let keyIdentifier =
            try certificate.extensions.subjectKeyIdentifier?.keyIdentifier
            ?? SubjectKeyIdentifier(hash: certificate.publicKey).keyIdentifier
        var extensions = [
            try Certificate.Extension(AuthorityKeyIdentifier(keyIdentifier: keyIdentifier), critical: false),
            Certificate.Extension(
                oid: OID.crlNumber, critical: false, value: try der { try $0.serialize(number) }[...]),
        ]
        extensions.sort { $0.oid.description < $1.oid.description }

        let tbs = try der { coder in
            try coder.appendConstructedNode(identifier: .sequence) { coder in
                try coder.serialize(1)  // v2
                try writeAlgorithm(oid, nullParameters: nullParameters, into: &coder)
                try coder.serialize(certificate.subject)
                try writeTime(thisUpdate, into: &coder)
                try writeTime(nextUpdate, into: &coder)
                if !entries.isEmpty {
                    try coder.appendConstructedNode(identifier: .sequence) { coder in
                        for entry in entries {
                            try coder.appendConstructedNode(identifier: .sequence) { coder in
                                try coder.serialize(ArraySlice(try hexBytes(entry.serial)))
                                try writeTime(entry.revocationDate, into: &coder)
                                if let reason = entry.reason {
                                    let value = try der { coder in
                                        coder.appendPrimitiveNode(identifier: .enumerated) {
                                            $0.append(UInt8(reason.rawValue))
                                        }
                                    }
                                    try coder.serializeSequenceOf([
                                        Certificate.Extension(oid: OID.reasonCode, critical: false, value: value[...])
                                    ])
                                }
                            }
                        }
                    }
                }
                try coder.serialize(explicitlyTaggedWithTagNumber: 0, tagClass: .contextSpecific) { coder in
                    try coder.serializeSequenceOf(extensions)
                }
            }
        }
        let signature = try key.sign(bytes: tbs, signatureAlgorithm: algorithm)
        let whole = try der { coder in
            try coder.appendConstructedNode(identifier: .sequence) { coder in
                coder.serializeRawBytes(tbs)
                try writeAlgorithm(oid, nullParameters: nullParameters, into: &coder)
                try coder.serialize(ASN1BitString(bytes: signature.rawRepresentation[...]))
            }
        }
        return try CertificateRevocationList(derEncoded: whole)
    }

    static func der(_ body: (inout DER.Serializer) throws -> Void) throws -> [UInt8] {
        var serializer = DER.Serializer()
        try body(&serializer)
        return serializer.serializedBytes
    }

    static func writeAlgorithm(_ oid: ASN1ObjectIdentifier, nullParameters: Bool, into coder: inout DER.Serializer)
        throws
    {
        try coder.appendConstructedNode(identifier: .sequence) { coder in
            try coder.serialize(oid)
            if nullParameters { try coder.serialize(ASN1Null()) }
        }
    }

    /// UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 §5.1.2.4).
    static func writeTime(_ date: Date, into coder: inout DER.Serializer) throws {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        if c.year! < 2050 {
            try coder.serialize(
                UTCTime(
                    year: c.year!, month: c.month!, day: c.day!, hours: c.hour!, minutes: c.minute!, seconds: c.second!)
            )
        } else {
            try coder.serialize(
                GeneralizedTime(
                    year: c.year!, month: c.month!, day: c.day!, hours: c.hour!, minutes: c.minute!,
                    seconds: c.second!, fractionalSeconds: 0))
        }
    }

    static func hexBytes(_ hex: String) throws -> [UInt8] {
        let text = Entry.normalized(hex)
        guard text.count % 2 == 0, !text.isEmpty else {
            throw PKIError.invalidArgument("serial '\(hex)' is not an even number of hex digits")
        }
        var bytes: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            guard let byte = UInt8(text[index..<next], radix: 16) else {
                throw PKIError.invalidArgument("serial '\(hex)' is not hexadecimal")
            }
            bytes.append(byte)
            index = next
        }
        return bytes
    }

    // MARK: - Parsing

    /// Parses DER.
    public init(derEncoded bytes: [UInt8]) throws {
        derBytes = bytes
        let root = try DER.parse(bytes)
        var parsed: (tbs: ArraySlice<UInt8>, algorithm: ASN1ObjectIdentifier, signature: [UInt8], body: Parts)!
        try DER.sequence(root, identifier: .sequence) { nodes in
            guard let tbsNode = nodes.next(), let algorithmNode = nodes.next(), let signatureNode = nodes.next() else {
                throw PKIError.malformed("CRL: missing parts")
            }
            let body = try Self.parseTBS(tbsNode)
            let algorithm = try DER.sequence(algorithmNode, identifier: .sequence) { nodes in
                let oid = try ASN1ObjectIdentifier(derEncoded: &nodes)
                while nodes.next() != nil {}  // parameters (NULL for RSA)
                return oid
            }
            let signature = try ASN1BitString(derEncoded: signatureNode)
            parsed = (tbsNode.encodedBytes, algorithm, Array(signature.bytes), body)
        }
        guard let algorithm = OID.algorithms.first(where: { $0.1 == parsed.algorithm })?.0 else {
            throw PKIError(.unsupported, "CRL signed with an unsupported algorithm (\(parsed.algorithm))")
        }
        tbsBytes = parsed.tbs
        signatureBytes = parsed.signature
        signatureAlgorithm = algorithm
        issuer = parsed.body.issuer
        thisUpdate = parsed.body.thisUpdate
        nextUpdate = parsed.body.nextUpdate
        number = parsed.body.number
        authorityKeyIdentifier = parsed.body.authorityKeyIdentifier
        entries = parsed.body.entries
    }

    struct Parts {
        var issuer: DistinguishedName
        var thisUpdate: Date
        var nextUpdate: Date?
        var number: String?
        var authorityKeyIdentifier: String?
        var entries: [Entry]
    }

    static func parseTBS(_ node: ASN1Node) throws -> Parts {
        try DER.sequence(node, identifier: .sequence) { nodes in
            var next = nodes.next()
            if next?.identifier == .integer { next = nodes.next() }  // version
            // signature
            guard next?.identifier == .sequence else { throw PKIError.malformed("CRL: no signature algorithm") }
            guard let issuerNode = nodes.next(), let thisNode = nodes.next() else {
                throw PKIError.malformed("CRL: no issuer")
            }
            var parts = Parts(
                issuer: try DistinguishedName(derEncoded: issuerNode), thisUpdate: try readTime(thisNode),
                nextUpdate: nil, number: nil, authorityKeyIdentifier: nil, entries: [])
            while let item = nodes.next() {
                switch item.identifier {
                case .utcTime, .generalizedTime:
                    parts.nextUpdate = try readTime(item)
                case .sequence:
                    parts.entries = try DER.sequence(item, identifier: .sequence) { list in
                        var entries: [Entry] = []
                        while let entry = list.next() { entries.append(try parseEntry(entry)) }
                        return entries
                    }
                case ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific):
                    let extensions = try DER.explicitlyTagged(item, tagNumber: 0, tagClass: .contextSpecific) {
                        try DER.sequence(of: Certificate.Extension.self, identifier: .sequence, rootNode: $0)
                    }
                    for ext in extensions {
                        if ext.oid == OID.crlNumber {
                            let value = try ArraySlice<UInt8>(derEncoded: try DER.parse(Array(ext.value)))
                            parts.number = SerialNumbers.hex(value)
                        } else if ext.oid == OID.authorityKeyIdentifier, let aki = try? AuthorityKeyIdentifier(ext),
                            let id = aki.keyIdentifier
                        {
                            parts.authorityKeyIdentifier = SerialNumbers.hex(id)
                        }
                    }
                default:
                    continue
                }
            }
            return parts
        }
    }

    static func parseEntry(_ node: ASN1Node) throws -> Entry {
        try DER.sequence(node, identifier: .sequence) { nodes in
            let serial = try ArraySlice<UInt8>(derEncoded: &nodes)
            guard let dateNode = nodes.next() else { throw PKIError.malformed("CRL entry without a date") }
            var reason: RevocationReason?
            if let extensionsNode = nodes.next() {
                for ext in try DER.sequence(
                    of: Certificate.Extension.self, identifier: .sequence, rootNode: extensionsNode)
                where ext.oid == OID.reasonCode {
                    let value = try DER.parse(Array(ext.value))
                    if case .primitive(let content) = value.content, let byte = content.last {
                        reason = RevocationReason(rawValue: Int(byte))
                    }
                }
            }
            return Entry(
                serial: SerialNumbers.hex(serial), revocationDate: try readTime(dateNode),
                reason: reason)
        }
    }

    static func readTime(_ node: ASN1Node) throws -> Date {
        var components = DateComponents()
        components.timeZone = TimeZone(identifier: "UTC")
        switch node.identifier {
        case .utcTime:
            let time = try UTCTime(derEncoded: node)
            (components.year, components.month, components.day) = (time.year, time.month, time.day)
            (components.hour, components.minute, components.second) = (time.hours, time.minutes, time.seconds)
        case .generalizedTime:
            let time = try GeneralizedTime(derEncoded: node)
            (components.year, components.month, components.day) = (time.year, time.month, time.day)
            (components.hour, components.minute, components.second) = (time.hours, time.minutes, time.seconds)
        default:
            throw PKIError.malformed("CRL: expected a time")
        }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        guard let date = calendar.date(from: components) else { throw PKIError.malformed("CRL: invalid date") }
        return date
    }

    // MARK: - Use

    /// Reads a CRL file, PEM (`X509 CRL`) or DER.
    public static func load(_ bytes: [UInt8], source: String) throws -> CertificateRevocationList {
        if let documents = try PEMFile.documents(bytes, source: source) {
            guard let document = documents.first(where: { $0.discriminator == "X509 CRL" }) else {
                throw PKIError.malformed(
                    "\(source) holds no CRL (found: \(documents.map(\.discriminator).joined(separator: ", ")))")
            }
            return try parse(document.derBytes, source: source)
        }
        return try parse(bytes, source: source)
    }

    static func parse(_ der: [UInt8], source: String) throws -> CertificateRevocationList {
        do {
            return try CertificateRevocationList(derEncoded: der)
        } catch let error as PKIError {
            throw PKIError(error.code, "\(source): \(error.message)")
        } catch {
            throw PKIError.malformed("\(source): not a valid CRL (\(error))")
        }
    }

    /// Whether `authority` signed this CRL (and is the issuer it names).
    public func isSigned(by authority: Certificate) -> Bool {
        authority.subject == issuer
            && authority.publicKey.isValidSignature(
                signatureBytes, for: tbsBytes, signatureAlgorithm: signatureAlgorithm)
    }

    /// Whether `date` is past nextUpdate.
    public func isExpired(at date: Date = Date()) -> Bool {
        nextUpdate.map { date > $0 } ?? false
    }

    /// The entry for `certificate`, if this CRL (from its issuer) revokes it.
    public func entry(for certificate: Certificate) -> Entry? {
        guard certificate.issuer == issuer else { return nil }
        let serial = Entry.normalized(SerialNumbers.hex(certificate.serialNumber))
        return entries.first { $0.serial == serial }
    }

    /// PEM text (`X509 CRL`).
    public var pem: String {
        PEMFile.encode(type: "X509 CRL", der: derBytes)
    }
}
