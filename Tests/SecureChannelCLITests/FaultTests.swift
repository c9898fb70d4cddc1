import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Things that break around a running system: a restarted server, clients killed mid-stream, a full or read-only
/// disk under the CA.
@Suite("Faults: restarts, killed clients, full and read-only disks", .timeLimit(.minutes(3)))
struct FaultTests {
    @Test("the server restarts while 5 clients send with --retry: every message gets its reply")
    func restartWithRetry() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        let port = try TunnelConfigTests.freePort()
        let serve = [
            "serve", "--listen", "127.0.0.1:\(port)", "--cert", dir.file("Jill.crt"), "--key", dir.file("Jill.key"),
            "--ca", dir.file("ca.crt"), "--allow-any-client",
        ]
        var server = try RunningProcess(try Tools.securechannel(), serve)
        try await server.waitForOutput { $0.contains("listening on") }

        let clients = try (0..<5).map { _ in
            try RunningProcess(
                try Tools.securechannel(),
                [
                    "send", "--connect", "127.0.0.1:\(port)", "--server-name", "localhost", "--cert",
                    dir.file("Chris.crt"),
                    "--key", dir.file("Chris.key"), "--ca", dir.file("ca.crt"), "--retry", "30",
                ])
        }
        defer { for client in clients { client.stop() } }
        for (number, client) in clients.enumerated() {
            client.send("client \(number) before\n")
            try await client.waitForOutput { $0.contains("client \(number) before") }
        }

        server.signal(SIGTERM)
        #expect(try await server.waitForExit() == 0)
        // While the server is down, every client sends: the connection is gone, so each one retries.
        for (number, client) in clients.enumerated() { client.send("client \(number) during\n") }
        try await clients[0].waitForOutput { $0.contains("retrying in") }
        server = try RunningProcess(try Tools.securechannel(), serve)
        defer { server.stop() }
        try await server.waitForOutput { $0.contains("listening on") }

        for (number, client) in clients.enumerated() {
            client.send("client \(number) after\n")
            client.closeInput()
            let status = try? await client.waitForExit(timeout: 60)
            #expect(
                status == 0,
                "\(client.output().replacingOccurrences(of: "\n", with: " | ")) SERVER: \(server.output().replacingOccurrences(of: "\n", with: " | "))"
            )
            let lines = client.output().split(separator: "\n").filter { $0.hasPrefix("client ") }
            #expect(
                lines == ["client \(number) before", "client \(number) during", "client \(number) after"],
                "\(client.output())")
        }
    }

    @Test("10 bulk clients killed with SIGKILL mid-stream: the server carries on and gives their descriptors back")
    func killedClients() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try await CLI.barryJillChris(in: dir.path)
        let server = try await ServerProcess.start(dir: dir.path)
        defer { server.stop() }
        let pid = server.process.pid
        let baseline = try await SoakTests.settled { ProcessStats.openDescriptors(pid) }

        let clients = try (0..<10).map { _ in
            try RunningProcess(
                try Tools.securechannel(),
                [
                    "bench", "--connect", "127.0.0.1:\(server.port)", "--server-name", "localhost", "--cert",
                    dir.file("Chris.crt"),
                    "--key", dir.file("Chris.key"), "--ca", dir.file("ca.crt"), "--mode", "bulk", "--duration", "60",
                ])
        }
        defer { for client in clients { client.stop() } }
        // Kill them once all ten are connected and streaming.
        let deadline = Date() + 30
        while ProcessStats.openDescriptors(pid) < baseline + 10, Date() < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(ProcessStats.openDescriptors(pid) >= baseline + 10, "the bulk clients never all connected")
        for client in clients { client.signal(SIGKILL) }

        let result = try await server.send(dir.path, ["still serving"])
        #expect(result.stdout == "still serving\n", "\(result.stderr)")
        let after = try await SoakTests.settled { ProcessStats.openDescriptors(pid) }
        #expect(after == baseline, "descriptors: \(baseline) before, \(after) after")
        let log = server.process.output()
        #expect(log.components(separatedBy: "ended: ").count - 1 >= 11, "each killed connection is logged as ended")
    }

    @Test(
        "ca issue on a full disk and on a read-only one: one clear error, the inventory untouched",
        .enabled(if: getuid() == 0, "needs root to mount a small tmpfs"))
    func fullAndReadOnlyDisk() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let mountPoint = dir.file("small")
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        try #require(mount("tmpfs", mountPoint, "tmpfs", 0, "size=512k") == 0, "cannot mount a tmpfs: errno \(errno)")
        defer { umount2(mountPoint, Int32(MNT_DETACH)) }
        let pki = "\(mountPoint)/pki"
        try await CLI.ok(["ca", "init", "--dir", pki, "--name", "Barry"])
        try await CLI.ok(["ca", "issue", "client", "--dir", pki, "--name", "Chris"])
        let inventory = try Data(contentsOf: URL(fileURLWithPath: "\(pki)/ca.db"))
        let files = try FileManager.default.subpathsOfDirectory(atPath: pki).sorted()

        // Fill the disk to the last byte.
        let filler =
            FileHandle(forWritingAtPath: mountPoint + "/filler")
            ?? {
                FileManager.default.createFile(atPath: mountPoint + "/filler", contents: nil)
                return FileHandle(forWritingAtPath: mountPoint + "/filler")!
            }()
        while (try? filler.write(contentsOf: Data(count: 1_024))) != nil {}
        try? filler.close()

        let full = try await CLI.run(["ca", "issue", "client", "--dir", pki, "--name", "Full"])
        #expect(full.status == 1)
        #expect(full.stderr.hasPrefix("error: ") && full.stderr.contains("No space left on device"), "\(full.stderr)")
        #expect(full.stderr.split(separator: "\n").count == 1, "one line: \(full.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: "\(pki)/ca.db")) == inventory)
        #expect(
            try FileManager.default.subpathsOfDirectory(atPath: pki).sorted() == files,
            "no partial or temporary file left")

        try FileManager.default.removeItem(atPath: mountPoint + "/filler")
        try #require(
            mount("tmpfs", mountPoint, "tmpfs", UInt(MS_REMOUNT | MS_RDONLY), "size=512k") == 0,
            "remount read-only: errno \(errno)")
        let readOnly = try await CLI.run(["ca", "issue", "client", "--dir", pki, "--name", "ReadOnly"])
        #expect(readOnly.status == 1)
        #expect(
            readOnly.stderr.hasPrefix("error: ") && readOnly.stderr.contains("Read-only file system"),
            "\(readOnly.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: "\(pki)/ca.db")) == inventory)
        let list = try await CLI.run(["ca", "list", "--dir", pki])
        #expect(
            list.status == 0 && list.stdout.contains("Chris") && !list.stdout.contains("Full"),
            "\(list.stdout)\(list.stderr)")
    }
}
