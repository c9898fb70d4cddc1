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

    @Test(
        "renew-from, crl-url and crl-refresh in a serve section and in tunnel entries: read with absolute paths; a bad value is one line naming the file, the section and the key"
    )
    func onlineCAKeys() throws {
        let base = "/etc/securechannel"
        let file = try ConfigFile(
            yaml: """
                serve:
                  listen: 127.0.0.1:0
                  cert: jill.crt
                  key: jill.key
                  ca: ca.crt
                  allow-any-client: true
                  renew-from: https://ca.example:8443
                  crl-url: https://ca.example:8443
                  crl-refresh: 5s
                tunnels:
                  - name: db
                    mode: server
                    listen: 127.0.0.1:0
                    target: 127.0.0.1:5432
                    cert: db.crt
                    key: db.key
                    ca: ca.crt
                    allow-any-client: true
                    renew-from: https://ca.example:8443
                  - name: plain
                    mode: server
                    listen: 127.0.0.1:0
                    target: 127.0.0.1:6379
                    cert: db.crt
                    key: db.key
                    ca: ca.crt
                    allow-any-client: true
                """, source: "ends.yaml", baseDirectory: base)
        let serve = try #require(try file.serveOnlineCA(overriddenBy: ConfigFields(commandLineIn: "/tmp")))
        #expect(serve.renewFrom == "https://ca.example:8443" && serve.crlURL == "https://ca.example:8443")
        #expect(serve.crlRefresh == 5)
        #expect(
            serve.certificate == "\(base)/jill.crt" && serve.key == "\(base)/jill.key" && serve.ca == "\(base)/ca.crt")
        #expect(serve.crlFile == "\(base)/jill.crt.crl")
        let tunnels = try file.tunnelOnlineCA()
        #expect(Array(tunnels.keys) == ["db"], "a tunnel with neither key has no renewal")
        #expect(tunnels["db"]?.renewFrom == "https://ca.example:8443" && tunnels["db"]?.crlURL == nil)
        #expect(tunnels["db"]?.crlRefresh == 60, "the default")

        for (line, wanted) in [
            ("renew-from: http://ca.example:8443", "line 6: 'renew-from' must be the online CA's https://HOST:PORT"),
            ("crl-refresh: 10", "line 6: 'crl-refresh' goes with crl-url"),
            (
                "crl-url: https://ca.example:8443\n  crl-refresh: soon",
                "line 7: 'crl-refresh' must be a number of seconds"
            ),
        ] {
            let bad = try ConfigFile(
                yaml: "serve:\n  listen: 127.0.0.1:0\n  cert: a.crt\n  key: a.key\n  ca: ca.crt\n  \(line)\n",
                source: "bad.yaml", baseDirectory: base)
            let error = #expect(throws: (any Error).self) {
                _ = try bad.serveOnlineCA(overriddenBy: ConfigFields(commandLineIn: "/tmp"))
            }
            let text = "\(error.map { "\($0)" } ?? "")"
            #expect(text.hasPrefix("bad.yaml: serve: ") && text.contains(wanted) && !text.contains("\n"), "\(text)")
        }
    }
}
