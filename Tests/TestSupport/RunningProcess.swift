import Foundation

/// A long-running child process (a server, an interactive client) whose output is read while it runs.
///
/// Spawned with posix_spawn and reaped with waitpid: Foundation's `Process` was seen to spin forever in
/// `waitUntilExit` for a child (tshark) that had already exited.
public final class RunningProcess: @unchecked Sendable {
    /// The child's process id.
    public let pid: pid_t
    private let stdinWrite: Int32
    private let lock = NSLock()
    private var exitStatus: Int32?
    private var inputClosed = false
    let directory: TemporaryDirectory
    /// A short name for messages.
    public let name: String

    /// Starts `executable` with `arguments`; stdout and stderr go to one file read by ``output()``.
    public init(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws {
        directory = try TemporaryDirectory()
        name = (executable as NSString).lastPathComponent
        let path = try executable.hasPrefix("/") ? executable : Tools.require(executable)
        var pipeFDs: [Int32] = [0, 0]
        // Close-on-exec: a process spawned later must not inherit this stdin's write end, or closing our end
        // would never give this child its end of input.
        guard pipe(&pipeFDs) == 0 else { throw ProcessEnded(name: name, output: "pipe() failed") }
        for fd in pipeFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[0], 0)
        posix_spawn_file_actions_addclose(&actions, pipeFDs[1])
        posix_spawn_file_actions_addopen(&actions, 1, directory.file("out"), O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let env = ProcessInfo.processInfo.environment.merging(environment ?? [:]) { $1 }.map { "\($0.key)=\($0.value)" }
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup($0) } + [nil]
        defer {
            for pointer in argv + envp { free(pointer) }
        }
        _ = FileManager.default.createFile(atPath: directory.file("out"), contents: nil)
        // The calling thread (a concurrency pool thread) may block signals; the child must start with none blocked
        // and default handlers, or SIGINT/SIGTERM would never reach it.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var child: pid_t = 0
        let result = posix_spawn(&child, path, &actions, &attributes, argv, envp)
        close(pipeFDs[0])
        guard result == 0 else {
            close(pipeFDs[1])
            throw ProcessEnded(name: name, output: "posix_spawn failed: \(String(cString: strerror(result)))")
        }
        pid = child
        stdinWrite = pipeFDs[1]
    }

    /// Everything the process printed so far (stdout and stderr interleaved).
    public func output() -> String {
        (try? String(contentsOfFile: directory.file("out"), encoding: .utf8)) ?? ""
    }

    /// Writes to the process's stdin.
    public func send(_ text: String) {
        lock.lock()
        defer { lock.unlock() }
        guard !inputClosed else { return }
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { write(stdinWrite, $0.baseAddress, $0.count) }
    }

    /// Closes the process's stdin.
    public func closeInput() {
        lock.lock()
        defer { lock.unlock() }
        if !inputClosed {
            inputClosed = true
            close(stdinWrite)
        }
    }

    /// Reaps the child if it exited; returns its status (or 128 + signal).
    private func poll() -> Int32? {
        lock.lock()
        defer { lock.unlock() }
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        if result == -1 && errno == ECHILD {
            // Reaped by someone else (Foundation's Process reaps on SIGCHLD): gone, with no status to tell.
            exitStatus = 255
            return exitStatus
        }
        guard result == pid else { return nil }
        let signal = status & 0x7F
        exitStatus = signal == 0 ? (status >> 8) & 0xFF : 128 + signal
        return exitStatus
    }

    /// Whether it is still running.
    public var isRunning: Bool { poll() == nil }

    /// Waits until the output matches `predicate`, the process exits, or the timeout passes; returns the output.
    @discardableResult
    public func waitForOutput(timeout: Double = 20, _ predicate: (String) -> Bool) async throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let text = output()
            if predicate(text) { return text }
            if !isRunning {
                let final = output()
                if predicate(final) { return final }
                throw ProcessEnded(name: name, output: final)
            }
            if Date() > deadline {
                throw TimedOut(what: "\(name) waiting for output; got: \(text.suffix(500))", seconds: timeout)
            }
            try await Task.sleep(for: .milliseconds(20))  // polling a child's output file
        }
    }

    /// Waits for the process to exit and returns its status.
    public func waitForExit(timeout: Double = 20) async throws -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let status = poll() { return status }
            if Date() > deadline { throw TimedOut(what: "\(name) to exit", seconds: timeout) }
            try await Task.sleep(for: .milliseconds(20))  // polling a child process
        }
    }

    /// Sends a signal.
    public func signal(_ signal: Int32) {
        if isRunning { kill(pid, signal) }
    }

    /// Stops the process: SIGTERM now; then, on a thread of its own, SIGKILL if it is still there after 3 s, the
    /// reaping and the removal of its files. Cleanups call this from `defer` on one of the test process's few
    /// concurrency threads, which every other test's handshakes need: it never waits there.
    public func stop() {
        closeInput()
        if isRunning { kill(pid, SIGTERM) }
        let thread = Thread { [self] in
            let deadline = Date().addingTimeInterval(3)
            while isRunning && Date() < deadline { usleep(10_000) }
            if isRunning {
                kill(pid, SIGKILL)
                let killed = Date().addingTimeInterval(10)
                while isRunning && Date() < killed { usleep(10_000) }
            }
            directory.cleanup()
        }
        thread.start()
    }

    /// The first `HOST:PORT` after `marker` in the output, as a port number.
    public func port(after marker: String) -> Int? {
        for line in output().split(separator: "\n") {
            // `listening on 127.0.0.1:8443 (…)`, `listening on [::1]:8443`, `metrics on http://127.0.0.1:9090/metrics`
            guard let range = line.range(of: marker) else { continue }
            var rest = line[range.upperBound...]
            if rest.hasPrefix("http://") { rest = rest.dropFirst(7) }
            if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") { rest = rest[close...] }
            guard let colon = rest.firstIndex(of: ":") else { continue }
            if let port = Int(rest[rest.index(after: colon)...].prefix(while: \.isNumber)) { return port }
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
