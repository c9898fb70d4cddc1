import Foundation
import SecureChannel
import SecureChannelConfig
import SecureChannelPKI
import SecureChannelTunnel
import TestSupport
import Testing

@Suite("ConfigFile: serve section, flags over file, relative paths")
struct ConfigFileLibraryTests {
    @Test("a flag's relative path is relative to the current directory, the file's to the file's directory")
    func relativePaths() throws {
        let pki = try TestPKI(clients: ["Eve"], crl: true)
        defer { pki.cleanup() }
        let elsewhere = try TemporaryDirectory()
        defer { elsewhere.cleanup() }
        for suffix in ["crt", "key"] {
            try SecureFile.write(
                try SecureFile.read(pki.dir.file("Jill.\(suffix)")), to: elsewhere.file("other.\(suffix)"), mode: 0o600)
        }
        let file = try ConfigFile(
            yaml: """
                serve:
                  listen: 127.0.0.1:0
                  cert: Jill.crt
                  key: Jill.key
                  ca: ca.crt
                  allow-cn: [Chris]
                  idle-timeout: 30
                """, source: "serve.yaml", baseDirectory: pki.dir.path)
        var flags = ConfigFields(commandLineIn: elsewhere.path)
        flags.set("cert", "other.crt")
        flags.set("key", "other.key")
        flags.set("allow-cn", list: ["Eve"])
        let settings = try file.serveSettings(overriddenBy: flags)
        let files = try #require(settings.server.reloadFiles)
        #expect(files.certificate == elsewhere.file("other.crt"))
        #expect(files.key == elsewhere.file("other.key"))
        #expect(files.ca == pki.dir.file("ca.crt"))
        #expect(settings.server.rules.summary.contains("Eve") && !settings.server.rules.summary.contains("Chris"))
        #expect(settings.server.idleTimeout == .seconds(30))
        #expect(settings.server.handshakeTimeout == .seconds(10), "defaults fill what neither gives")
    }
}
