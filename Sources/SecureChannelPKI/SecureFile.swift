import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// File operations with the guarantees a security tool owes its users: atomic replacement, explicit modes,
/// no silent overwrite, and advisory locks.
public enum SecureFile {
    /// Mode for private keys.
    public static let privateMode: mode_t = 0o600
    /// Mode for certificates, CRLs and the inventory.
    public static let publicMode: mode_t = 0o644

    /// The largest input read from standard input, a pipe or a FIFO (certificates, keys, CRLs, CSRs).
    public static let maximumStreamBytes = 64 << 20

    /// Reads a whole file, with a one-line error naming the path. `-` is standard input (readable once per
    /// process); pipes, FIFOs, `/dev/stdin` and `<(…)` are read like files.
    public static func read(_ path: String) throws -> [UInt8] {
        if path == "-" { return try StandardInput.shared.readOnce() }
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == EACCES {
                throw PKIError(.io, "\(path) cannot be reached; check the permissions of its directories")
            }
            throw PKIError(.fileNotFound, "\(path) does not exist; check the path")
        }
        if info.st_mode & S_IFMT == S_IFDIR {
            throw PKIError(.malformedInput, "\(path) is a directory; pass a file")
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == EACCES { throw PKIError(.io, "\(path) cannot be read; check its permissions") }
            throw PKIError(.io, "\(path) cannot be opened: \(errnoText())")
        }
        defer { close(fd) }
        return try readAll(fd, source: path)
    }

    /// Reads `fd` to its end (at most ``maximumStreamBytes``).
    static func readAll(_ fd: Int32, source: String) throws -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { systemRead(fd, $0.baseAddress!, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw PKIError(.io, "\(source) cannot be read: \(errnoText())")
            }
            if n == 0 { return bytes }
            bytes += chunk[..<n]
            if bytes.count > maximumStreamBytes {
                throw PKIError(
                    .malformedInput, "\(source) is larger than \(maximumStreamBytes >> 20) MiB; pass the right file")
            }
        }
    }

    /// Standard input as a file named `-`: read whole, once.
    final class StandardInput: @unchecked Sendable {
        static let shared = StandardInput()
        private let lock = NSLock()
        private var consumed = false

        func readOnce() throws -> [UInt8] {
            try lock.withLock {
                guard !consumed else {
                    throw PKIError(
                        .invalidArgument,
                        "standard input (-) was already read for another file; only one input can be -")
                }
                consumed = true
                return try SecureFile.readAll(0, source: "standard input")
            }
        }
    }

    /// `path`'s directory (empty for a bare name) and last component, like `dirname`/`basename`.
    ///
    /// Not `NSString.deletingLastPathComponent`: on Linux (swift-corelibs-foundation, Swift 6.3) it traps on a
    /// one-character name that came from a Substring, e.g. `--dir p` as parsed from the command line.
    public static func split(_ path: String) -> (directory: String, name: String) {
        var trimmed = Substring(path)
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return ("", String(trimmed)) }
        let name = String(trimmed[trimmed.index(after: slash)...])
        var directory = trimmed[..<slash]
        while directory.count > 1 && directory.hasSuffix("/") { directory = directory.dropLast() }
        return (directory.isEmpty ? "/" : String(directory), name)
    }

    /// Writes `bytes` to `path` atomically: a temporary file in the same directory with the final mode from the
    /// start, flushed to disk, then renamed into place (or linked, when `overwrite` is false, so an existing file
    /// is never replaced). On any failure nothing is left behind.
    public static func write(_ bytes: [UInt8], to path: String, mode: mode_t, overwrite: Bool = true) throws {
        let (directory, name) = split(path)
        let dir = directory.isEmpty ? "." : directory
        try requireWritableDirectory(dir)
        if !overwrite, try writeUnnamed(bytes, to: path, in: dir, mode: mode) {
            syncDirectory(dir)
            return
        }
        let temp = "\(dir)/.\(name).tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw PKIError(.io, "cannot create a file in \(dir): \(errnoText()); check permissions") }
        var ok = false
        defer {
            if !ok { unlink(temp) }
        }
        do {
            try fill(fd, with: bytes, mode: mode, path: path)
        } catch {
            close(fd)
            throw error
        }
        guard close(fd) == 0 else { throw PKIError(.io, "cannot flush \(path): \(errnoText())") }
        if overwrite {
            guard rename(temp, path) == 0 else { throw PKIError(.io, "cannot replace \(path): \(errnoText())") }
        } else {
            guard link(temp, path) == 0 else { throw linkError(path) }
            unlink(temp)
        }
        ok = true
        syncDirectory(dir)
    }

    /// A new file made without a name (`O_TMPFILE`), filled, flushed, then given its name with `linkat`: the same
    /// guarantees as a named temporary file, without creating and deleting one. Deleting a file per write made
    /// ext4 scan its recently deleted inodes at every creation (a sixth of `ca serve`'s CPU per renewal).
    /// False when the kernel, the file system or a missing `/proc` does not allow it (the named way is taken).
    private static func writeUnnamed(_ bytes: [UInt8], to path: String, in dir: String, mode: mode_t) throws -> Bool {
        #if os(Linux)
            guard access("/proc/self/fd", X_OK) == 0 else { return false }
            let fd = open(dir, O_WRONLY | O_CLOEXEC | O_DIRECTORY | 0o20000000, mode)  // O_TMPFILE
            guard fd >= 0 else { return false }
            defer { close(fd) }
            try fill(fd, with: bytes, mode: mode, path: path)
            guard linkat(AT_FDCWD, "/proc/self/fd/\(fd)", AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0 else {
                throw linkError(path)
            }
            return true
        #else
            return false
        #endif
    }

    /// Sets the mode of `fd` exactly (open's is filtered by the umask), writes all of `bytes` and flushes them.
    private static func fill(_ fd: Int32, with bytes: [UInt8], mode: mode_t, path: String) throws {
        guard fchmod(fd, mode) == 0 else { throw PKIError(.io, "cannot set the mode of \(path): \(errnoText())") }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { buffer in
                systemWrite(fd, buffer.baseAddress! + written, buffer.count - written)
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw PKIError(.io, "cannot write \(path): \(errnoText())")
            }
            written += n
        }
        guard fsync(fd) == 0 else { throw PKIError(.io, "cannot flush \(path): \(errnoText())") }
    }

    private static func linkError(_ path: String) -> PKIError {
        if errno == EEXIST { return PKIError(.fileExists, "\(path) already exists; remove it or choose another path") }
        return PKIError(.io, "cannot create \(path): \(errnoText())")
    }

    /// Writes a text file atomically.
    public static func write(_ text: String, to path: String, mode: mode_t, overwrite: Bool = true) throws {
        try write(Array(text.utf8), to: path, mode: mode, overwrite: overwrite)
    }

    /// Fails with a clear message unless `path` is an existing, writable directory.
    public static func requireWritableDirectory(_ path: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw PKIError(.fileNotFound, "directory \(path) does not exist; create it first (mkdir -p \(path))")
        }
        guard isDirectory.boolValue else {
            throw PKIError(.invalidArgument, "\(path) is not a directory; pass a directory")
        }
        guard access(path, W_OK | X_OK) == 0 else {
            throw PKIError(.io, "directory \(path) is not writable; check its permissions")
        }
    }

    /// Whether a file exists at `path`.
    public static func exists(_ path: String) -> Bool {
        FileManager.default.fileExists(atPath: path)
    }

    /// A warning when the private key at `path` can be read by its group or others; nil when its mode is fine.
    public static func keyExposureWarning(_ path: String) -> String? {
        guard path != "-", let mode = try? mode(of: path), mode & 0o077 != 0 else { return nil }
        return
            "\(path) is readable by \(mode & 0o007 != 0 ? "others" : "its group") (mode \(String(mode, radix: 8))): a private key should be 0600; run chmod 600 \(path)"
    }

    /// The permission bits of a file.
    public static func mode(of path: String) throws -> mode_t {
        var info = stat()
        guard stat(path, &info) == 0 else { throw PKIError(.io, "cannot stat \(path): \(errnoText())") }
        return info.st_mode & 0o7777
    }

    /// Runs `body` while holding an exclusive advisory lock on `path` (created 0600 if missing).
    public static func withExclusiveLock<T>(_ path: String, _ body: () throws -> T) throws -> T {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, privateMode)
        guard fd >= 0 else { throw PKIError(.io, "cannot open lock file \(path): \(errnoText())") }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            if errno != EINTR { throw PKIError(.io, "cannot lock \(path): \(errnoText())") }
        }
        defer { flock(fd, LOCK_UN) }
        return try body()
    }

    static func syncDirectory(_ dir: String) {
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }
}

/// The C library's write(2), reachable from inside types that declare their own `write`.
private func systemWrite(_ fd: Int32, _ pointer: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, pointer, count)
}

/// The C library's read(2), reachable from inside types that declare their own `read`.
private func systemRead(_ fd: Int32, _ pointer: UnsafeMutableRawPointer, _ count: Int) -> Int {
    read(fd, pointer, count)
}
