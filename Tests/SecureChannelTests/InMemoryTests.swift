import Crypto
import Foundation
import NIOCore
import NIOEmbedded
import SecureChannelBench
import SecureChannelPKI
import Testing
import X509

@testable import SecureChannel

@Suite("In memory: access rules, framing, ServerHello observer, idle timeout")
struct InMemoryTests {
    func identity(cn: String, dns: [String] = [], uris: [String] = []) -> PeerIdentity {
        var identity = PeerIdentity(certificate: try! Self.certificate(cn: cn))
        identity.dnsNames = dns
        identity.uris = uris
        return identity
    }

    static func certificate(cn: String) throws -> Certificate {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let name = try DistinguishedName { CommonName(cn) }
        return try Certificate(
            version: .v3, serialNumber: .init(), publicKey: key.publicKey, notValidBefore: Date(),
            notValidAfter: Date() + 3600, issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: Certificate.Extensions(), issuerPrivateKey: key)
    }

    @Test("access rules allow by CN, DNS SAN, URI SAN or any; nothing else")
    func accessRules() {
        let chris = identity(cn: "Chris", dns: ["chris.example"], uris: ["spiffe://example.org/chris"])
        #expect(PeerIdentity(certificate: try! Self.certificate(cn: "Chris")).commonName == "Chris")
        #expect(AccessRules(commonNames: ["Chris"]).permits(chris))
        #expect(AccessRules(dnsNames: ["CHRIS.example"]).permits(chris))
        #expect(AccessRules(uris: ["spiffe://example.org/chris"]).permits(chris))
        #expect(AccessRules.anyClient.permits(chris))
        #expect(!AccessRules(commonNames: ["Eve"]).permits(chris))
        #expect(!AccessRules(commonNames: ["chris"]).permits(chris))  // CN is exact
        #expect(!AccessRules(uris: ["spiffe://example.org/eve"]).permits(chris))
        #expect(!AccessRules().permits(chris))
        #expect(AccessRules().isEmpty && !AccessRules.anyClient.isEmpty)
    }

    /// Feeds `input` split at every position (and byte by byte) and collects the frames.
    func frames(_ framing: Framing, _ input: [UInt8], limit: Int = 64) throws -> [[[UInt8]]] {
        var results: [[[UInt8]]] = []
        var splits: [[Int]] = (0...input.count).map { [$0] }
        splits.append(Array(0...input.count))
        for cuts in splits {
            let channel = EmbeddedChannel()
            try framing.addHandlers(to: channel.pipeline.syncOperations, maximumMessageBytes: limit)
            var start = 0
            for cut in cuts + [input.count] where cut >= start {
                try channel.writeInbound(ByteBuffer(bytes: input[start..<cut]))
                start = cut
            }
            var got: [[UInt8]] = []
            while let frame = try channel.readInbound(as: ByteBuffer.self) {
                got.append(Array(frame.readableBytesView))
            }
            results.append(got)
            _ = try? channel.finish()
        }
        return results
    }

    @Test("line framing: LF and CRLF, every split of the input gives the same messages")
    func lineFraming() throws {
        let input = Array("hello\nwor ld\r\n\nlast\n".utf8)
        for got in try frames(.lines, input) {
            #expect(got == [Array("hello".utf8), Array("wor ld".utf8), [], Array("last".utf8)])
        }
    }

    @Test("a line cut off by the end of input is an error that says so; complete lines before it pass")
    func lineCutOff() throws {
        let channel = EmbeddedChannel()
        try Framing.lines.addHandlers(to: channel.pipeline.syncOperations, maximumMessageBytes: 64)
        try channel.writeInbound(ByteBuffer(string: "whole\nhal"))
        try channel.writeInbound(ByteBuffer(string: "f a line"))
        #expect(try channel.readInbound(as: ByteBuffer.self) == ByteBuffer(string: "whole"))
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil, "the unfinished line is held")
        channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        let error = #expect(throws: SecureChannelError.self) { try channel.throwIfErrorCaught() }
        #expect(error?.message == "the connection ended inside a message (11 bytes without a final newline)")
        _ = try? channel.finish()
    }

    @Test("length framing is binary-safe, whatever the splits")
    func lengthFraming() throws {
        let payload: [UInt8] = [0, 10, 13, 255, 0x0A]
        let input: [UInt8] = [0, 0, 0, 5] + payload + [0, 0, 0, 0] + [0, 0, 0, 1, 7]
        for got in try frames(.length, input) {
            #expect(got == [payload, [], [7]])
        }
    }

    @Test("an over-long line without a newline is an error once past the limit")
    func overLong() throws {
        let channel = EmbeddedChannel()
        try Framing.lines.addHandlers(to: channel.pipeline.syncOperations, maximumMessageBytes: 16)
        #expect(throws: (any Error).self) {
            try channel.writeInbound(ByteBuffer(repeating: UInt8(ascii: "x"), count: 64))
        }
        let length = EmbeddedChannel()
        try Framing.length.addHandlers(to: length.pipeline.syncOperations, maximumMessageBytes: 16)
        #expect(throws: (any Error).self) {
            try length.writeInbound(ByteBuffer(bytes: [0, 0, 1, 0] + [UInt8](repeating: 1, count: 40)))
        }
    }

    /// Found by the FuzzFraming target: a whole over-long message arriving within one read got past the buffer
    /// bound (which only limits what waits for the end of a message).
    @Test("a whole over-long message within one read is refused too, for both framings")
    func overLongInOneRead() throws {
        let lines = EmbeddedChannel()
        try Framing.lines.addHandlers(to: lines.pipeline.syncOperations, maximumMessageBytes: 16)
        #expect(throws: ByteToMessageDecoderError.PayloadTooLargeError.self) {
            try lines.writeInbound(ByteBuffer(string: "exactly 16 bytes\n" + "seventeen bytes!!\n"))
        }
        #expect(
            try lines.readInbound(as: ByteBuffer.self) == ByteBuffer(string: "exactly 16 bytes"),
            "the one within the limit passed")
        let length = EmbeddedChannel()
        try Framing.length.addHandlers(to: length.pipeline.syncOperations, maximumMessageBytes: 16)
        #expect(throws: ByteToMessageDecoderError.PayloadTooLargeError.self) {
            try length.writeInbound(ByteBuffer(bytes: [0, 0, 0, 17] + [UInt8](repeating: 1, count: 17)))
        }
        #expect(try length.readInbound(as: ByteBuffer.self) == nil)
    }

    @Test("the observer reads cipher and group from a ServerHello and skips a HelloRetryRequest")
    func serverHello() {
        func hello(random: [UInt8], cipher: UInt16, group: UInt16) -> [UInt8] {
            var body: [UInt8] = [0x03, 0x03] + random + [0]  // legacy version, random, empty session id
            body += [UInt8(cipher >> 8), UInt8(cipher & 0xFF), 0]
            let keyShare: [UInt8] = [0x00, 0x33, 0x00, 0x02, UInt8(group >> 8), UInt8(group & 0xFF)]
            body += [0, UInt8(keyShare.count)] + keyShare
            let handshake: [UInt8] = [2, 0, UInt8(body.count >> 8), UInt8(body.count & 0xFF)] + body
            return [22, 3, 3, UInt8(handshake.count >> 8), UInt8(handshake.count & 0xFF)] + handshake
        }
        let plain = hello(random: [UInt8](repeating: 7, count: 32), cipher: 0x1301, group: 0x11EC)
        #expect(HandshakeObserver.parse(ByteBuffer(bytes: plain)) == .found(.init(cipherSuite: 0x1301, group: 0x11EC)))
        #expect(HandshakeObserver.parse(ByteBuffer(bytes: plain.prefix(20))) == .needMore)
        let retry = hello(random: HandshakeObserver.helloRetryRandom, cipher: 0x1302, group: 0x001D)
        let ccs: [UInt8] = [20, 3, 3, 0, 1, 1]
        let second = hello(random: [UInt8](repeating: 9, count: 32), cipher: 0x1302, group: 0x001D)
        #expect(HandshakeObserver.parse(ByteBuffer(bytes: retry + ccs)) == .needMore)
        #expect(
            HandshakeObserver.parse(ByteBuffer(bytes: retry + ccs + second))
                == .found(.init(cipherSuite: 0x1302, group: 0x001D)))
        #expect(HandshakeObserver.parse(ByteBuffer(bytes: [23, 3, 3, 0, 2, 1, 2])) == .gaveUp)
    }

    @Test("the idle timeout counts from the last read or flush, and closes with its reason")
    func idleTimeout() throws {
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(loop: loop)
        let record = ConnectionRecord(remote: nil)
        try channel.pipeline.syncOperations.addHandler(IdleTimeoutHandler(timeout: .seconds(10), record: record))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        loop.advanceTime(by: .seconds(6))
        try channel.writeInbound(ByteBuffer(string: "in"))
        channel.pipeline.fireChannelReadComplete()
        loop.advanceTime(by: .seconds(6))  // 12 s since the start, 6 since the read
        #expect(channel.isActive)
        try channel.writeOutbound(ByteBuffer(string: "out"))  // a write and its flush
        loop.advanceTime(by: .seconds(9))  // 9 s since the flush
        #expect(channel.isActive)
        #expect(record.closeReason == nil)
        loop.advanceTime(by: .seconds(1))
        #expect(!channel.isActive)
        #expect(record.closeReason == "idle timeout: nothing for 10 s")
    }

    @Test("bench's echo check tells a corrupted reply from a reordered one")
    func echoIntegrity() {
        let third = EchoMessage.make(worker: 7, sequence: 3, size: 64)
        #expect(third.utf8.count == 64)
        #expect(EchoMessage.check(third, worker: 7) == .intact)
        #expect(EchoMessage.make(worker: 7, sequence: 4, size: 64) != third)
        var flipped = Array(third.utf8)
        flipped[20] ^= 0x01
        #expect(EchoMessage.check(String(decoding: flipped, as: UTF8.self), worker: 7) == .corrupted)
        #expect(EchoMessage.check(third, worker: 8) == .corrupted, "another connection's message is not an answer")
        #expect(EchoMessage.check(String(third.dropLast(3)), worker: 7) == .corrupted)
    }
}
