#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Notices changes to a set of files by comparing inode, size and modification time: portable (Linux and macOS),
/// and it sees atomic renames as well as in-place writes. The one place SecureChannel looks at file metadata.
struct FileWatcher: Sendable {
    struct Stamp: Hashable, Sendable {
        var inode: UInt64
        var size: Int64
        var seconds: Int
        var nanoseconds: Int
    }

    let paths: [String]

    /// The current stamps (nil for a file that is missing right now).
    func stamps() -> [Stamp?] {
        paths.map { path in
            var info = stat()
            guard stat(path, &info) == 0 else { return nil }
            #if canImport(Darwin)
                return Stamp(
                    inode: UInt64(info.st_ino), size: Int64(info.st_size), seconds: info.st_mtimespec.tv_sec,
                    nanoseconds: info.st_mtimespec.tv_nsec)
            #else
                return Stamp(
                    inode: UInt64(info.st_ino), size: Int64(info.st_size), seconds: info.st_mtim.tv_sec,
                    nanoseconds: info.st_mtim.tv_nsec)
            #endif
        }
    }
}
