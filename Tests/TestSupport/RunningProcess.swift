import Foundation

/// A long-running child process (a server, an interactive client) whose output is read while it runs.
public final class RunningProcess: @unchecked Sendable {
    let process = Process()
    let directory: TemporaryDirectory
    let stdinPipe = Pipe()
    /// A short name for messages.
    public let name: String

    /// Starts `executable` with `arguments`; stdout and stderr go to files read by ``output()``.
    public init(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws {
        directory = try TemporaryDirectory()
        name = (executable as NSString).lastPathComponent
        let outPath = directory.file("out")
        FileManager.default.createFile(atPath: outPath, contents: nil)
        let outHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        process.executableURL = URL(fileURLWithPath: try executable.hasPrefix("/") ? executable : Tools.require(executable))
        process.arguments = arguments
        if let environment {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        process.standardOutput = outHandle
        process.standardError = outHandle
        process.standardInput = stdinPipe
        try process.run()
        try? outHandle.close()
    }

    /// Everything the process printed so far (stdout and stderr interleaved).
    public func output() -> String {
        (try? String(contentsOfFile: directory.file("out"), encoding: .utf8)) ?? ""
    }

    /// Writes to the process's stdin.
    public func send(_ text: String) {
        stdinPipe.fileHandleForWriting.write(Data(text.utf8))
    }

    /// Closes the process's stdin.
    public func closeInput() {
        try? stdinPipe.fileHandleForWriting.close()
    }

    /// Waits until the output matches `predicate`, the process exits, or the timeout passes; returns the output.
    @discardableResult
    public func waitForOutput(timeout: Double = 20, _ predicate: (String) -> Bool) async throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let text = output()
            if predicate(text) { return text }
            if !process.isRunning {
                let final = output()
                if predicate(final) { return final }
                throw ProcessEnded(name: name, output: final)
            }
            if Date() > deadline { throw TimedOut(what: "\(name) waiting for output; got: \(text.suffix(500))", seconds: timeout) }
            try await Task.sleep(for: .milliseconds(20))  // polling a child's output file
        }
    }

    /// Waits for the process to exit and returns its status.
    public func waitForExit(timeout: Double = 20) async throws -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            if Date() > deadline { throw TimedOut(what: "\(name) to exit", seconds: timeout) }
            try await Task.sleep(for: .milliseconds(20))  // polling a child process
        }
        return process.terminationStatus
    }

    /// Whether it is still running.
    public var isRunning: Bool { process.isRunning }

    /// Sends a signal.
    public func signal(_ signal: Int32) {
        kill(process.processIdentifier, signal)
    }

    /// Stops the process (SIGTERM, then SIGKILL) and removes its files.
    public func stop() {
        if process.isRunning {
            process.terminate()
            let deadline = Date().addingTimeInterval(3)
            while process.isRunning && Date() < deadline { usleep(10_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        closeInput()
        directory.cleanup()
    }

    /// The first `HOST:PORT` after `marker` in the output, as a port number.
    public func port(after marker: String) -> Int? {
        for line in output().split(separator: "\n") where line.contains(marker) {
            if let last = line.split(separator: ":").last, let port = Int(last.trimmingCharacters(in: .whitespaces)) {
                return port
            }
        }
        return nil
    }
}

/// Thrown when a child process exited before printing what was awaited.
public struct ProcessEnded: Error, CustomStringConvertible {
    /// The process.
    public let name: String
    /// Its output.
    public let output: String
    /// Creates the error.
    public init(name: String, output: String) {
        self.name = name
        self.output = output
    }
    /// Explanation.
    public var description: String { "\(name) exited early; output: \(output.suffix(800))" }
}
