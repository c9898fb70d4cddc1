#if canImport(Glibc)
    import Glibc
#endif

/// Gives memory that the process freed back to the operating system, after a burst of connections ended.
///
/// glibc's `free` keeps freed memory in the heap for reuse; after a load peak (bulk clients with 64 KiB buffers,
/// a thousand handshakes) the server's RSS then stayed above its idle level for good. `malloc_trim` returns the
/// free pages. Elsewhere (macOS) the system allocator does this by itself, so this is a no-op there.
enum MemoryRelease {
    /// Returns free heap pages to the system (glibc), cheaply enough to call every few seconds.
    static func returnFreedMemory() {
        #if canImport(Glibc)
            if let trim = mallocTrim { _ = trim(0) }
        #endif
    }

    #if canImport(Glibc)
        /// glibc's `malloc_trim`, which the Glibc module does not export (it lives in `malloc.h`).
        private static let mallocTrim: (@convention(c) (Int) -> Int32)? = {
            guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return nil }
            return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
        }()
    #endif
}
