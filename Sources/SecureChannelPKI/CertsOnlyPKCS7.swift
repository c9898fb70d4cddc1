import Foundation
import SwiftASN1
import X509

/// The "certs-only" PKCS#7 that EST answers with (RFC 7030 §4.1.3, §4.2.3): a CMS ContentInfo holding a degenerate
/// SignedData (RFC 5652 §5: version 1, no digest algorithms, id-data with no content, the certificates, no
/// signers). swift-certificates keeps its CMS types internal, so this builds and reads those few nodes with
/// swift-asn1.
public enum CertsOnlyPKCS7 {
    static let signedData: ASN1ObjectIdentifier = [1, 2, 840, 113_549, 1, 7, 2]
    static let data: ASN1ObjectIdentifier = [1, 2, 840, 113_549, 1, 7, 1]
    static let explicitZero = ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific)

    /// DER of a certs-only SignedData holding `certificates`.
    public static func encode(_ certificates: [Certificate]) throws -> [UInt8] {
        var serializer = DER.Serializer()
        try serializer.appendConstructedNode(identifier: .sequence) { contentInfo in
            try contentInfo.serialize(signedData)
            try contentInfo.appendConstructedNode(identifier: explicitZero) { wrapper in
                try wrapper.appendConstructedNode(identifier: .sequence) { signed in
                    try signed.serialize(1)
                    signed.appendConstructedNode(identifier: .set) { _ in }
                    try signed.appendConstructedNode(identifier: .sequence) { content in
                        try content.serialize(data)
                    }
                    try signed.appendConstructedNode(identifier: explicitZero) { set in
                        for certificate in certificates { try set.serialize(certificate) }
                    }
                    signed.appendConstructedNode(identifier: .set) { _ in }
                }
            }
        }
        return serializer.serializedBytes
    }

    /// The certificates in a certs-only (or any) SignedData, in the order given; a one-line error otherwise.
    public static func decode(_ der: [UInt8], source: String) throws -> [Certificate] {
        func malformed(_ why: String) -> PKIError {
            PKIError(.malformedInput, "\(source) is not a PKCS#7 certificate bundle: \(why)")
        }
        do {
            let root = try DER.parse(der)
            guard case .constructed(let contentInfo) = root.content else { throw malformed("not a sequence") }
            var nodes = contentInfo.makeIterator()
            guard let type = nodes.next(), try ASN1ObjectIdentifier(derEncoded: type) == signedData else {
                throw malformed("not SignedData")
            }
            guard let wrapper = nodes.next(), case .constructed(let inner) = wrapper.content,
                let sequence = inner.first(where: { _ in true }), case .constructed(let fields) = sequence.content
            else { throw malformed("no SignedData body") }
            for field in fields where field.identifier == explicitZero {
                guard case .constructed(let list) = field.content else { throw malformed("bad certificate set") }
                return try list.map { try Certificate(derEncoded: $0.encodedBytes) }
            }
            throw malformed("it holds no certificates")
        } catch let error as PKIError {
            throw error
        } catch {
            throw malformed("\(error)")
        }
    }
}
