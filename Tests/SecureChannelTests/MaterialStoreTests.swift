import Foundation
import Logging
import NIOCore
import SecureChannel
import SecureChannelPKI
import TestSupport
import Testing

/// The material store checks that our certificate fits the side it is used on, at start and at every reload.
@Suite("Material store: the role of our certificate, atomic reloads", .timeLimit(.minutes(2)))
struct MaterialStoreTests {
    @Test("a client certificate or a CA certificate given to a server is refused at start, naming the file")
    func serverRefusesWrongRole() throws {
        let pki = try TestPKI()
        defer { pki.cleanup() }
        for (name, what) in [("Chris", "cannot be used here"), ("ca", "is a CA certificate")] {
            let files = TLSMaterialFiles(
                certificate: pki.dir.file("\(name).crt"), key: pki.dir.file("\(name).key"),
                ca: pki.dir.file("ca.crt"))
            let error = #expect(throws: SecureChannelError.self) {
                let configuration = try MessageServerConfiguration(
                    host: "127.0.0.1", port: 0, files: files, rules: .anyClient)
                _ = try MessageServer(configuration: configuration, logger: Logger(label: "test")) { message, _ in
                    message
                }
            }
            #expect(error?.code == .configuration)
            #expect(
                error?.message.contains("\(name).crt") == true && error?.message.contains(what) == true,
                "\(String(describing: error))")
            #expect(error?.message.contains("server certificate (serverAuth)") == true)
        }
        // The control: Jill's certificate starts a server.
        let configuration = try MessageServerConfiguration(
            host: "127.0.0.1", port: 0, files: pki.files(), rules: .anyClient)
        _ = try MessageServer(configuration: configuration, logger: Logger(label: "test")) { message, _ in message }
    }

    @Test("a client refuses to present a server certificate before it connects")
    func clientRefusesWrongRole() async throws {
        let pki = try TestPKI()
        defer { pki.cleanup() }
        // Port 9 (discard) on loopback: nothing listens, so reaching the network would fail differently.
        let configuration = MessageClientConfiguration(
            host: "127.0.0.1", port: 9, serverName: "localhost",
            identity: try pki.identity("Jill"), trust: pki.trust)
        let error = await #expect(throws: SecureChannelError.self) {
            _ = try await MessageClient.connect(configuration)
        }
        #expect(error?.code == .configuration, "\(String(describing: error))")
        #expect(
            error?.message.contains("Jill.crt") == true
                && error?.message.contains("client certificate (clientAuth)") == true)
        // The control: Chris's certificate gets as far as the network.
        var chris = configuration
        chris.identity = try pki.identity("Chris")
        let reached = await #expect(throws: SecureChannelError.self) { _ = try await MessageClient.connect(chris) }
        #expect(reached?.code == .connectionFailed)
    }

    @Test("a reload that brings a certificate for the wrong side keeps the old material")
    func reloadRefusesWrongRole() async throws {
        let pki = try TestPKI()
        defer { pki.cleanup() }
        let server = try await RunningServer.start(pki, watching: pki.files())
        let chris = try pki.identity("Chris")
        let before = try await MessageClient.connect(server.clientConfiguration(chris, trust: pki.trust)).server.serial
        try SecureFile.write(try SecureFile.read(pki.dir.file("Chris.crt")), to: pki.dir.file("Jill.crt"), mode: 0o644)
        try SecureFile.write(try SecureFile.read(pki.dir.file("Chris.key")), to: pki.dir.file("Jill.key"), mode: 0o600)
        #expect(server.server.reload(reason: "test") == false)
        let after = try await MessageClient.connect(server.clientConfiguration(chris, trust: pki.trust))
        #expect(after.server.serial == before)
        #expect(try await after.send("still Jill") == "still Jill")
        try await server.stop()
    }
}
