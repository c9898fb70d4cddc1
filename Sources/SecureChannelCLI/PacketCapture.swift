import Foundation

/// A tshark capture of one TCP port on the loopback interface, for `demo --capture`: started before the traffic,
/// stopped once the file holds it.
final class PacketCapture: @unchecked Sendable {
    let file: String
    private let process: Process
    private let errors: Pipe

    /// Starts `tshark -i lo -f "tcp port PORT" -w FILE` and waits until it captures; a missing tool or a refused
    /// capture is one line saying what to do.
    init(port: Int, file: String) async throws {
        guard let tshark = Self.find("tshark") else {
            throw CLIError("demo --capture needs tshark (Debian: apt-get install tshark); nothing was captured")
        }
        self.file = file
        process = Process()
        process.executableURL = URL(fileURLWithPath: tshark)
        process.arguments = ["-i", "lo", "-f", "tcp port \(port)", "-w", file]
        errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // tshark says "Capture started." on stderr once dumpcap is live, or why it cannot capture.
        var said = ""
        let deadline = Date().addingTimeInterval(15)
        while !said.contains("Capture started"), process.isRunning, Date() < deadline {
            let chunk = errors.fileHandleForReading.availableData
            said += String(decoding: chunk, as: UTF8.self)
            if chunk.isEmpty { try await Task.sleep(for: .milliseconds(20)) }  // waiting for tshark to start
        }
        guard said.contains("Capture started"), process.isRunning else {
            process.terminate()
            let reason = said.split(separator: "\n").last { !$0.hasPrefix("Capturing on") } ?? "it did not start"
            throw CLIError(
                "cannot capture on lo with tshark (\(reason.trimmingCharacters(in: .whitespaces))); run as root or join the wireshark group"
            )
        }
    }

    /// Waits until the file holds the traffic and stops growing (bounded), then stops tshark.
    func stop() async {
        var last = -1
        for _ in 0..<50 {
            let size = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0
            if size > 400 && size == last { break }
            last = size
            try? await Task.sleep(for: .milliseconds(200))  // dumpcap writes in batches
        }
        process.interrupt()
        // Polled, not waitUntilExit(): that waits on a run loop nobody runs in an async command.
        for _ in 0..<100 where process.isRunning {
            try? await Task.sleep(for: .milliseconds(50))  // tshark writes its last packets and exits
        }
        killTree()
    }

    // A demo that fails between the start and the stop leaves no capture running either.
    deinit { killTree() }

    /// SIGKILL to tshark and to its dumpcap, if tshark is still there: tshark was seen to ignore SIGINT and
    /// SIGTERM now and then, and killing it alone left its dumpcap capturing the loopback for good.
    private func killTree() {
        guard process.isRunning else { return }
        let pid = process.processIdentifier
        for child in Self.children(of: pid) { kill(child, SIGKILL) }
        kill(pid, SIGKILL)
    }

    /// The processes whose parent is `pid` (Linux: field 4 of /proc/PID/stat); none elsewhere.
    static func children(of pid: Int32) -> [Int32] {
        #if os(Linux)
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
            return entries.compactMap { Int32($0) }.filter { candidate in
                guard let stat = try? String(contentsOfFile: "/proc/\(candidate)/stat", encoding: .utf8),
                    let close = stat.lastIndex(of: ")")
                else { return false }
                let fields = stat[stat.index(after: close)...].split(separator: " ")
                return fields.count > 1 && Int32(fields[1]) == pid
            }
        #else
            return []
        #endif
    }

    static func find(_ tool: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(tool)" }.first {
            FileManager.default.isExecutableFile(atPath: $0)
        }
    }
}
