import Foundation
import Testing

/// A fresh temporary directory, removed by `cleanup()`.
public struct TemporaryDirectory: Sendable {
    /// Its path.
    public let path: String

    /// Creates a new empty directory under the system temporary directory.
    public init() throws {
        let base = FileManager.default.temporaryDirectory.path
        path = "\(base)/securechannel-test-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// An existing directory (created if missing), e.g. one a CLI test works in.
    public init(existing path: String) throws {
        self.path = path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// A path inside the directory.
    public func file(_ name: String) -> String { "\(path)/\(name)" }

    /// Removes the directory and everything in it.
    public func cleanup() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// The result of running a process.
public struct ProcessResult: Sendable {
    /// Exit status (or 128 + signal).
    public var status: Int32
    /// Everything written to stdout.
    public var stdout: String
    /// Everything written to stderr.
    public var stderr: String
}

/// External tools for interop tests.
public enum Tools {
    /// True when `.ci/run` demands that interop tools exist (`SECURECHANNEL_REQUIRE_INTEROP=1`).
    public static var interopRequired: Bool {
        ProcessInfo.processInfo.environment["SECURECHANNEL_REQUIRE_INTEROP"] == "1"
    }

    /// The full path of `name` on PATH, or nil.
    public static func path(_ name: String) -> String? {
        if name.hasPrefix("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
        // PATH, then the sbin directories (haproxy lives in /usr/sbin, not always on a user's PATH).
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        let paths: [String] = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin"]
        for directory in paths {
            let candidate = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Whether a test that needs `name` should run: the tool is there, or interop is required (so its absence fails).
    public static func enabled(_ names: String...) -> Bool {
        interopRequired || names.allSatisfy { path($0) != nil }
    }

    /// The tool's path; throws (failing the test) if it is missing.
    public static func require(_ name: String) throws -> String {
        guard let found = path(name) else {
            throw ToolMissing(name: name)
        }
        return found
    }

    /// The `securechannel` executable built beside the test bundle.
    public static func securechannel() throws -> String {
        let runner = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var directory = runner.deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("securechannel").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        throw ToolMissing(name: "securechannel (build it with 'swift build')")
    }

    /// Runs a program to completion with a timeout; output is collected through files, so it cannot deadlock.
    public static func run(
        _ executable: String, _ arguments: [String], stdin: String? = nil, environment: [String: String]? = nil,
        timeout: Double = 60
    ) async throws -> ProcessResult {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let outPath = directory.file("stdout")
        let errPath = directory.file("stderr")
        let inPath = directory.file("stdin")
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        _ = FileManager.default.createFile(atPath: inPath, contents: Data((stdin ?? "").utf8))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try executable.hasPrefix("/") ? executable : require(executable))
        process.arguments = arguments
        if let environment {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        let outHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        let errHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        let inHandle = try FileHandle(forReadingFrom: URL(fileURLWithPath: inPath))
        process.standardOutput = outHandle
        process.standardError = errHandle
        process.standardInput = inHandle
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        var zombieSince: Date?
        var reapedStatus: Int32?
        while process.isRunning {
            // Foundation's Process was seen to miss a child's exit while other tests spawned and reaped many (the
            // child a zombie, `isRunning` true until the timeout): a zombie left for a second is reaped here.
            if Self.isZombie(process.processIdentifier) {
                let since = zombieSince ?? Date()
                zombieSince = since
                if Date().timeIntervalSince(since) > 1, let status = Self.reap(process.processIdentifier) {
                    reapedStatus = status
                    break
                }
            }
            if Date() > deadline {
                // SIGKILL and a bounded wait: Foundation's waitUntilExit was seen to spin forever, and a hung test
                // must fail, not hang the run.
                kill(process.processIdentifier, SIGKILL)
                let killed = Date().addingTimeInterval(10)
                while process.isRunning && Date() < killed { try? await Task.sleep(for: .milliseconds(20)) }
                throw TimedOut(what: "\(executable) \(arguments.joined(separator: " "))", seconds: timeout)
            }
            try await Task.sleep(for: .milliseconds(20))  // polling a child process, not synchronisation
        }
        try? outHandle.close()
        try? errHandle.close()
        try? inHandle.close()
        let out = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        let err = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        return ProcessResult(status: reapedStatus ?? process.terminationStatus, stdout: out, stderr: err)
    }

    /// Whether `pid` has exited and waits to be reaped (state Z in /proc/PID/stat).
    static func isZombie(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }

    /// Reaps `pid`: its exit status (or the signal that ended it, as Foundation reports it), nil if not ours to reap.
    static func reap(_ pid: Int32) -> Int32? {
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return nil }
        return status & 0x7F == 0 ? (status >> 8) & 0xFF : status & 0x7F
    }
}

/// Thrown when an interop tool is missing.
public struct ToolMissing: Error, CustomStringConvertible {
    /// The missing tool.
    public let name: String
    /// Explanation.
    public var description: String { "\(name) is not installed; .ci/run installs it (apt-get install)" }
}

/// Thrown when a child process exceeds its time.
public struct TimedOut: Error, CustomStringConvertible {
    /// What was running.
    public let what: String
    /// The limit.
    public let seconds: Double
    /// Creates the error.
    public init(what: String, seconds: Double) {
        self.what = what
        self.seconds = seconds
    }
    /// Explanation.
    public var description: String { "timed out after \(seconds) s: \(what)" }
}

/// Runs blocking work (file locks, synchronous CA calls, a socket loop) on a thread of its own, so that it never
/// holds one of the few threads Swift concurrency has (two on a two-core machine), which every other test's
/// handshakes need.
public func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.start()
    }
}
