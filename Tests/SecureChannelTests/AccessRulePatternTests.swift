import Crypto
import Foundation
import SecureChannelPKI
import Testing
import X509

@testable import SecureChannel

/// Issue 15's rules matrix, in memory: each pattern kind matching and not, and the rules that can never match
/// refused before a server starts.
@Suite("In memory: access rule patterns (ghostunnel's wildcards), SPIFFE IDs, e-mail, OU, key pins")
struct AccessRulePatternTests {
    /// A certificate with the given subject and names, as `PeerIdentity` sees it after verification.
    static func identity(
        cn: String = "w", ou: [String] = [], dns: [String] = [], uris: [String] = [], emails: [String] = [],
        key: P256.Signing.PrivateKey = P256.Signing.PrivateKey()
    ) throws -> PeerIdentity {
        let signing = Certificate.PrivateKey(key)
        let name = try DistinguishedName {
            for unit in ou { OrganizationalUnitName(unit) }
            CommonName(cn)
        }
        var names: [GeneralName] = dns.map { .dnsName($0) }
        names += uris.map { .uniformResourceIdentifier($0) }
        names += emails.map { .rfc822Name($0) }
        let certificate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: signing.publicKey, notValidBefore: Date(),
            notValidAfter: Date() + 3600, issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                if !names.isEmpty { SubjectAlternativeNames(names) }
            }, issuerPrivateKey: signing)
        return PeerIdentity(certificate: certificate)
    }

    @Test("DNS: * is one label, case-insensitive; URI: * one segment, a final ** the rest; scheme and authority exact")
    func wildcards() throws {
        let a = try Self.identity(dns: ["a.Example.com"])
        #expect(AccessRules(dnsNames: ["*.example.com"]).permits(a))
        #expect(!AccessRules(dnsNames: ["*.example.com"]).permits(try Self.identity(dns: ["a.b.example.com"])))
        #expect(!AccessRules(dnsNames: ["*.example.com"]).permits(try Self.identity(dns: ["example.com"])))
        #expect(AccessRules(dnsNames: ["a.*.com"]).permits(a))

        let web = try Self.identity(uris: ["spiffe://example.org/ns/prod/web"])
        #expect(AccessRules(uris: ["spiffe://example.org/ns/*/web"]).permits(web))
        #expect(AccessRules(uris: ["spiffe://example.org/ns/**"]).permits(web))
        #expect(AccessRules(uris: ["spiffe://example.org/**"]).permits(web))
        #expect(!AccessRules(uris: ["spiffe://example.org/ns/*"]).permits(web), "* is one segment only")
        #expect(!AccessRules(uris: ["spiffe://example.org/ns/prod/web/**"]).permits(web), "** needs a segment")
        #expect(!AccessRules(uris: ["spiffe://example.net/**"]).permits(web), "the trust domain is exact")
        #expect(AccessRules(uris: ["spiffe://example.org/ns/prod/web"]).permits(web))
        #expect(!AccessRules(uris: ["spiffe://example.org/ns/prod/we"]).permits(web))
    }

    @Test("SPIFFE rules need an X.509-SVID: exactly one URI SAN; the refusal says so")
    func spiffe() throws {
        let rules = AccessRules(spiffeIDs: ["spiffe://example.org/ns/*"])
        #expect(rules.permits(try Self.identity(uris: ["spiffe://example.org/ns/web"])))
        #expect(!rules.permits(try Self.identity(uris: ["spiffe://example.org/other/web"])))
        let two = try Self.identity(uris: ["spiffe://example.org/ns/web", "https://example.org/web"])
        let reason = try #require(rules.refusal(of: two))
        #expect(reason.contains("not an X.509-SVID") && reason.contains("2 URI SANs"), "\(reason)")
        let none = try #require(rules.refusal(of: try Self.identity(dns: ["web.example"])))
        #expect(none.contains("0 URI SANs"))
        // A URI rule is not a SPIFFE rule: two URI SANs are fine there.
        #expect(AccessRules(uris: ["spiffe://example.org/ns/*"]).permits(two))
    }

    @Test("e-mail (case-insensitive), OU (exact) and SHA-256 public-key pins")
    func otherKinds() throws {
        #expect(AccessRules(emails: ["Chris@Example.com"]).permits(try Self.identity(emails: ["chris@example.com"])))
        #expect(!AccessRules(emails: ["eve@example.com"]).permits(try Self.identity(emails: ["chris@example.com"])))
        #expect(AccessRules(organizationalUnits: ["ops"]).permits(try Self.identity(ou: ["dev", "ops"])))
        #expect(!AccessRules(organizationalUnits: ["Ops"]).permits(try Self.identity(ou: ["ops"])))
        let key = P256.Signing.PrivateKey()
        let pinned = try Self.identity(key: key)
        // As `cert inspect` prints it (colon-separated), in lower case.
        let hex = try Certificate.PublicKey(key.publicKey).spkiSHA256().lowercased()
        #expect(AccessRules(publicKeySHA256: [hex]).permits(pinned), "colons and lower case are accepted")
        // The same key in another certificate (renewed, other name) still matches; another key does not.
        #expect(AccessRules(publicKeySHA256: [hex]).permits(try Self.identity(cn: "renewed", key: key)))
        #expect(!AccessRules(publicKeySHA256: [hex]).permits(try Self.identity()))
    }

    @Test("rules that cannot match are refused with one line: a * in a CN, half a label or segment, ** not last")
    func impossibleRules() {
        let cases: [(AccessRules, String)] = [
            (AccessRules(commonNames: ["C*"]), "--allow-cn 'C*'"),
            (AccessRules(dnsNames: ["web*.example.com"]), "whole label"),
            (AccessRules(uris: ["spiffe://example.org/ns/web*"]), "whole path segment"),
            (AccessRules(uris: ["spiffe://example.org/**/web"]), "may only come last"),
            (AccessRules(uris: ["spiffe://*/web"]), "must be exact"),
            (AccessRules(uris: ["example.org/*"]), "SCHEME://AUTHORITY/PATH"),
            (AccessRules(spiffeIDs: ["https://example.org/web"]), "spiffe://"),
            (AccessRules(publicKeySHA256: ["abcd"]), "64 hex digits"),
        ]
        for (rules, words) in cases {
            #expect(throws: SecureChannelError.self) { try rules.validate() }
            do {
                try rules.validate()
            } catch {
                #expect("\(error)".contains(words), "\(error)")
                #expect(!"\(error)".contains("\n"))
            }
        }
        #expect(throws: Never.self) {
            try AccessRules(
                commonNames: ["Chris"], dnsNames: ["*.example.com"],
                uris: ["spiffe://example.org/**", "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66"],
                spiffeIDs: ["spiffe://example.org/ns/*"]
            ).validate()
        }
    }
}
