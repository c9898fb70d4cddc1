import Foundation
import NIOConcurrencyHelpers
import VaporCSQLite

/// SQLite, the copy vapor/sqlite-nio carries, called on the caller's own thread: the store's API is synchronous,
/// so a statement runs where it is asked for instead of hopping to a driver's thread and back through an event
/// loop (three thread switches a statement, a tenth of an online CA's CPU). A file, a rollback journal (or a
/// write-ahead log while `ca serve` runs), `BEGIN IMMEDIATE` writers that wait for each other (busy timeout)
/// instead of failing. Statements are prepared once per connection and kept.
final class SQLiteBackend: SQLBackend, @unchecked Sendable {
    let dialect = SQLDialect.sqlite
    private let path: String
    /// The connection; nil once closed. Touched only under `lock`.
    private var database: OpaquePointer?
    /// Prepared statements by their SQL, kept for the connection's life.
    private var prepared: [String: OpaquePointer] = [:]
    /// Whether closing returns the store to the rollback journal (see ``useWriteAheadLog()``).
    private var restoreJournal = false
    /// One statement or transaction at a time on the connection (it is shared by every thread of the process).
    private let lock = NSRecursiveLock()
    /// Set inside ``writeTransaction(lockKey:_:)``: there `BEGIN IMMEDIATE` waited for the write lock already.
    private var inTransaction = false

    /// How many prepared statements a connection keeps (the store's queries are a few dozen).
    static let maximumKept = 64

    /// How long a writer waits for another process's transaction before giving up.
    static let busyTimeoutMilliseconds: Int32 = 30_000

    init(path: String) throws {
        self.path = path
        Self.initialize
        var handle: OpaquePointer?
        let flags = SQLITE_OPEN_CREATE | SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_EXRESCODE
        let status = sqlite_nio_sqlite3_open_v2(path, &handle, flags, nil)
        guard status == SQLITE_OK, let handle else {
            let reason = handle.flatMap { sqlite_nio_sqlite3_errmsg($0) }.map { String(cString: $0) }
            sqlite_nio_sqlite3_close_v2(handle)
            throw PKIError(
                .store,
                "cannot open the CA store \(path): \(reason ?? Self.text(of: status)); check the directory's permissions"
            )
        }
        database = handle
        // The rollback journal is truncated after each commit instead of deleted: the same durability
        // (synchronous stays FULL), without creating and deleting a file per transaction. A store in WAL mode
        // (a `ca serve` has it open, or was killed) stays so, at once: leaving WAL needs the store alone, and
        // waiting for that would hold `ca list` for as long as the CA runs.
        _ = try? run("PRAGMA journal_mode = TRUNCATE", [])
        // SQLite's sleeping busy handler: a writer waits up to the timeout for another process's transaction.
        sqlite_nio_sqlite3_busy_timeout(handle, Self.busyTimeoutMilliseconds)
        Self.registry.withLockedValue { $0[ObjectIdentifier(self)] = Weak(self) }
        _ = Self.closeAtExit
    }

    deinit { close() }

    /// Write-ahead log while this process has the store open (`ca serve`): a commit is one append and one fsync of
    /// ca.db-wal (synchronous stays FULL, so a commit survives a power cut) where the rollback journal takes three,
    /// and readers do not wait for the writer. Its close (at the latest at exit) returns the store to the rollback
    /// journal, so that a CA that is not running is the one file `ca.db`, readable on a read-only file system,
    /// and the other commands fail on a full disk as before. Where WAL cannot be had, the journal stays.
    func useWriteAheadLog() {
        lock.lock()
        defer { lock.unlock() }
        guard (try? execute("PRAGMA journal_mode = WAL", []))?.first?.first?.string == "wal" else { return }
        restoreJournal = true
    }

    func execute(_ sql: String, _ binds: [SQLValue]) throws -> [[SQLValue]] {
        lock.lock()
        defer { lock.unlock() }
        // A statement outside a transaction that reads, then writes, can be told "busy" at once where waiting
        // could deadlock (another process is committing, or committed since it read): it failed as a whole and
        // holds no lock, so it is run again, within the busy timeout.
        let deadline = Date() + Double(Self.busyTimeoutMilliseconds) / 1000
        while true {
            do {
                return try run(sql, binds)
            } catch let failure as Failure where !inTransaction && failure.isBusy && Date() < deadline {
                usleep(2_000)
            } catch let failure as Failure {
                throw storeError(failure.message)
            }
        }
    }

    func writeTransaction<T>(lockKey: String, _ body: () throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        _ = try execute("BEGIN IMMEDIATE", [])
        inTransaction = true
        defer { inTransaction = false }
        return try commitOrRollBack(body)
    }

    /// Closes the connection (once; later calls do nothing). Never waits for another process: returning the
    /// store to the rollback journal needs it alone, and is skipped at once while another has it open (the last
    /// one to close removes the log either way).
    func close() {
        lock.lock()
        defer { lock.unlock() }
        guard let database else { return }
        if restoreJournal {
            sqlite_nio_sqlite3_busy_timeout(database, 0)
            _ = try? run("PRAGMA journal_mode = TRUNCATE", [])
        }
        for statement in prepared.values { sqlite_nio_sqlite3_finalize(statement) }
        prepared = [:]
        sqlite_nio_sqlite3_close_v2(database)
        self.database = nil
        _ = Self.registry.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(self)) }
    }

    /// One statement: prepared (or taken from the kept ones), bound, stepped to the end, reset.
    private func run(_ sql: String, _ binds: [SQLValue]) throws -> [[SQLValue]] {
        guard let database else { throw Failure(status: SQLITE_MISUSE, message: "the store is closed") }
        let (statement, kept) = try statement(for: sql, on: database)
        defer {
            // Not sqlite3_clear_bindings: it marks a statement whose plan looked at a parameter as expired, and the
            // next run prepares it again (half of a renewal's certificate lookup). Every parameter is bound anew.
            if kept {
                sqlite_nio_sqlite3_reset(statement)
            } else {
                sqlite_nio_sqlite3_finalize(statement)
            }
        }
        for (index, value) in binds.enumerated() {
            let position = Int32(index + 1)
            let status: Int32 =
                switch value {
                case .text(let text):
                    sqlite_nio_sqlite3_bind_text64(
                        statement, position, text, UInt64(text.utf8.count), Self.transient, UInt8(SQLITE_UTF8))
                case .integer(let number): sqlite_nio_sqlite3_bind_int64(statement, position, number)
                case .real(let number): sqlite_nio_sqlite3_bind_double(statement, position, number)
                case .null: sqlite_nio_sqlite3_bind_null(statement, position)
                }
            guard status == SQLITE_OK else { throw failure(status, database) }
        }
        // A kept statement still holds the last run's values: any parameter not given now is NULL.
        let parameters = Int(sqlite_nio_sqlite3_bind_parameter_count(statement))
        if parameters > binds.count {
            for position in (binds.count + 1)...parameters { sqlite_nio_sqlite3_bind_null(statement, Int32(position)) }
        }
        var rows: [[SQLValue]] = []
        let columns = sqlite_nio_sqlite3_column_count(statement)
        while true {
            let status = sqlite_nio_sqlite3_step(statement)
            if status == SQLITE_DONE { return rows }
            guard status == SQLITE_ROW else { throw failure(status, database) }
            rows.append((0..<columns).map { column in Self.value(statement, column) })
        }
    }

    /// The statement for `sql`, and whether it is kept (the store's queries) or to be finalized after its run
    /// (transaction control and pragmas: cheap to prepare, and rare).
    private func statement(for sql: String, on database: OpaquePointer) throws -> (OpaquePointer, Bool) {
        if let kept = prepared[sql] { return (kept, true) }
        var statement: OpaquePointer?
        let status = sqlite_nio_sqlite3_prepare_v3(
            database, Self.positional(sql), -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard status == SQLITE_OK, let statement else { throw failure(status, database) }
        // At most `maximumKept`: a query whose text grows with its input (a list of paths, a batch of rows) must not
        // fill a long-running process with statements used once.
        let keep =
            prepared.count < Self.maximumKept
            && ["SELECT", "INSERT", "UPDATE", "DELETE", "WITH"].contains { sql.hasPrefix($0) }
        if keep { prepared[sql] = statement }
        return (statement, keep)
    }

    private static func value(_ statement: OpaquePointer, _ column: Int32) -> SQLValue {
        switch sqlite_nio_sqlite3_column_type(statement, column) {
        case SQLITE_INTEGER: return .integer(sqlite_nio_sqlite3_column_int64(statement, column))
        case SQLITE_FLOAT: return .real(sqlite_nio_sqlite3_column_double(statement, column))
        case SQLITE_TEXT:
            guard let text = sqlite_nio_sqlite3_column_text(statement, column) else { return .null }
            let count = Int(sqlite_nio_sqlite3_column_bytes(statement, column))
            return .text(String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self))
        default: return .null
        }
    }

    /// An SQLite failure: its code and its message, as SQLite words it.
    struct Failure: Error {
        let status: Int32
        let message: String
        var isBusy: Bool { status & 0xFF == SQLITE_BUSY }
    }

    private func failure(_ status: Int32, _ database: OpaquePointer) -> Failure {
        let message = sqlite_nio_sqlite3_errmsg(database).map { String(cString: $0) } ?? Self.text(of: status)
        return Failure(status: status, message: message)
    }

    private static func text(of status: Int32) -> String {
        sqlite_nio_sqlite3_errstr(status).map { String(cString: $0) } ?? "SQLite error \(status)"
    }

    private func storeError(_ reason: String) -> PKIError {
        let advice =
            reason.contains("not a database") || reason.contains("malformed")
            ? "it is damaged or not a CA store: restore it from a backup" : "nothing was changed"
        return PKIError(.store, "the CA store \(path) failed: \(reason); \(advice)")
    }

    /// `$1` → `?1`: SQLite's explicit-index form of PostgreSQL's parameters (the store's SQL holds no other `$`).
    static func positional(_ sql: String) -> String {
        String(decoding: sql.utf8.map { $0 == UInt8(ascii: "$") ? UInt8(ascii: "?") : $0 }, as: UTF8.self)
    }

    /// SQLite copies a bound text before the call returns.
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    /// `sqlite3_initialize` once, before the first open, as SQLite asks of a multi-threaded program.
    private static let initialize: Void = { _ = sqlite_nio_sqlite3_initialize() }()

    /// Connections not yet closed, closed at exit (a store still open then returns to the rollback journal).
    private static let registry = NIOLockedValueBox<[ObjectIdentifier: Weak]>([:])
    private struct Weak: @unchecked Sendable {
        weak var backend: SQLiteBackend?
        init(_ backend: SQLiteBackend) { self.backend = backend }
    }
    private static let closeAtExit: Void = {
        atexit {
            let backends = SQLiteBackend.registry.withLockedValue { registry in
                defer { registry.removeAll() }
                return registry.values.compactMap(\.backend)
            }
            for backend in backends { backend.close() }
        }
    }()
}
