import Foundation
import NIOConcurrencyHelpers
import NIOCore
import SecureChannelPKI
import SwiftASN1
import TestSupport
import Testing
import X509

@testable import SecureChannel

/// A verifier remembers the chains it accepted, so that a client reconnecting with the same chain is not parsed
/// and verified again. What it must never do: answer for another chain, outlive a certificate or a CRL, grow
/// without bound, or survive a reload.
@Suite("Accepted chains: the verifier's cache", .timeLimit(.minutes(2)))
struct AcceptedChainsTests {
    static func entry(_ pki: TestPKI, _ name: String, until: Date) throws -> ([[UInt8]], AcceptedChains.Entry) {
        let identity = try pki.identity(name)
        let leaf = identity.leaf
        var serializer = DER.Serializer()
        try serializer.serialize(leaf)
        let der = serializer.serializedBytes
        return (
            [der],
            AcceptedChains.Entry(
                leaf: leaf, chain: [leaf], identity: PeerIdentity(certificate: leaf), validUntil: until)
        )
    }

    @Test("in memory: only the same bytes, only until validUntil, at most capacity entries")
    func inMemory() throws {
        let pki = try TestPKI(clients: ["Dave"])
        defer { pki.cleanup() }
        let cache = AcceptedChains()
        let now = Date()
        let (chris, chrisEntry) = try Self.entry(pki, "Chris", until: now + 60)
        let (dave, _) = try Self.entry(pki, "Dave", until: now + 60)
        cache.store(chris, chrisEntry)
        #expect(cache.lookup(chris, now: now)?.identity.commonName == "Chris")
        #expect(cache.lookup(dave, now: now) == nil, "another chain is never answered for")
        var altered = chris
        altered[0][altered[0].count - 1] ^= 1
        #expect(cache.lookup(altered, now: now) == nil, "one byte off is another chain")
        #expect(cache.lookup(chris, now: now + 61) == nil, "not past the first expiry of its certificates and CRLs")
        #expect(cache.count == 0, "an expired entry is dropped")
        for index in 0..<(AcceptedChains.capacity + 5) {
            cache.store([[UInt8(index & 0xFF), UInt8(index >> 8)]], chrisEntry)
        }
        #expect(cache.count <= AcceptedChains.capacity)
    }

    @Test("loopback: reconnections keep each client's own identity; rules still refuse on every connection")
    func loopback() async throws {
        let pki = try TestPKI(clients: ["Dave", "Mallory"])
        defer { pki.cleanup() }
        let server = try await RunningServer.start(
            pki, rules: AccessRules(commonNames: ["Chris", "Dave"]),
            handler: { _, peer in ByteBuffer(string: peer.commonName ?? "nobody") })
        for round in 0..<3 {
            for name in ["Chris", "Dave"] {
                let client = try await MessageClient.connect(
                    server.clientConfiguration(try pki.identity(name), trust: pki.trust))
                #expect(try await client.send("who am I") == name, "round \(round)")
                await client.close()
            }
            let refused = await channelErrorCode {
                let client = try await MessageClient.connect(
                    server.clientConfiguration(try pki.identity("Mallory"), trust: pki.trust))
                _ = try await client.send("let me in")
            }
            #expect(refused != nil, "round \(round): Mallory is refused by the rules every time")
        }
        try await server.stop()
    }
}
