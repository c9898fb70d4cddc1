import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO

/// A value bound to, or read from, an SQL statement.
enum SQLValue: Sendable, Equatable {
    case text(String)
    case integer(Int64)
    case real(Double)
    case null

    var string: String? {
        if case .text(let value) = self { return value }
        return nil
    }

    var double: Double? {
        switch self {
        case .real(let value): value
        case .integer(let value): Double(value)
        default: nil
        }
    }

    var integer: Int64? {
        switch self {
        case .integer(let value): value
        case .real(let value): Int64(value)
        default: nil
        }
    }

    init(_ text: String?) { self = text.map { .text($0) } ?? .null }
    init(_ date: Date?) { self = date.map { .real($0.timeIntervalSince1970) } ?? .null }
}

/// The two SQL dialects a CA store speaks; they differ only in how an auto-numbered column is declared.
enum SQLDialect: Sendable {
    case sqlite
    case postgres

    var autoIncrementKey: String {
        switch self {
        case .sqlite: "INTEGER PRIMARY KEY AUTOINCREMENT"
        case .postgres: "BIGSERIAL PRIMARY KEY"
        }
    }
}

/// What a CA store needs from a database: one connection, statements with `$1`… parameters, and write transactions
/// serialised against every other writer of the same CA (in this process and in others).
///
/// The CA's API is synchronous (a `ca` command does one thing and exits), so the backends wait for the
/// database's futures; they are never called on an event loop.
protocol SQLBackend: Sendable {
    var dialect: SQLDialect { get }
    /// Runs one statement and returns its rows, each as its columns in order.
    func execute(_ sql: String, _ binds: [SQLValue]) throws -> [[SQLValue]]
    /// Runs `body` in one transaction that no other writer of `lockKey` overlaps; commits, or rolls back on error.
    func writeTransaction<T>(lockKey: String, _ body: () throws -> T) throws -> T
    /// Closes the connection.
    func close()
    /// For a long-running writer (`ca serve`): faster commits while it has the store open; see SQLiteBackend.
    func useWriteAheadLog()
}

extension SQLBackend {
    func useWriteAheadLog() {}

    /// Runs `body` in the transaction just begun: commits after it, rolls back if it (or the commit) throws.
    func commitOrRollBack<T>(_ body: () throws -> T) throws -> T {
        do {
            let result = try body()
            _ = try execute("COMMIT", [])
            return result
        } catch {
            _ = try? execute("ROLLBACK", [])
            throw error
        }
    }
}

/// The event loop PostgreSQL's driver runs on: its own, so that a CA call made inside a busy server process never
/// waits behind that process's event loops.
enum StoreThreads {
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
}

/// PostgreSQL through vapor/postgres-nio, for several CA processes on several machines: every write transaction
/// of one CA takes a transaction-scoped advisory lock on the CA's identity, so writers are serialised as on SQLite.
final class PostgresBackend: SQLBackend, @unchecked Sendable {
    let dialect = SQLDialect.postgres
    private let connection: PostgresConnection
    private let lock = NSRecursiveLock()
    private let logger = Logger(label: "securechannel.ca-store")
    /// The server, for messages (never the password).
    let display: String

    init(url: String) throws {
        let parsed = try PostgresLocation(url)
        display = parsed.display
        var configuration = PostgresConnection.Configuration(
            host: parsed.host, port: parsed.port, username: parsed.user, password: parsed.password,
            database: parsed.database, tls: try parsed.tls())
        configuration.options.connectTimeout = .seconds(10)
        do {
            connection = try PostgresConnection.connect(
                on: StoreThreads.group.next(), configuration: configuration, id: 1, logger: logger
            ).wait()
        } catch {
            throw PKIError(
                .store,
                "cannot connect to the CA store \(parsed.display): \(Self.describe(error)); check that PostgreSQL runs there and the user, password and database are right"
            )
        }
    }

    deinit { close() }

    func execute(_ sql: String, _ binds: [SQLValue]) throws -> [[SQLValue]] {
        lock.lock()
        defer { lock.unlock() }
        var bindings = PostgresBindings(capacity: binds.count)
        for value in binds {
            switch value {
            case .text(let text): bindings.append(text)
            case .integer(let number): bindings.append(number)
            case .real(let number): bindings.append(number)
            case .null: bindings.appendNull()
            }
        }
        do {
            let result = try connection.query(PostgresQuery(unsafeSQL: sql, binds: bindings), logger: logger).wait()
            return try result.map { row in
                try row.map { cell -> SQLValue in
                    guard cell.bytes != nil else { return .null }
                    switch cell.dataType {
                    case .int8, .int4, .int2: return .integer(try cell.decode(Int64.self))
                    case .float8, .float4, .numeric: return .real(try cell.decode(Double.self))
                    default: return .text(try cell.decode(String.self))
                    }
                }
            }
        } catch {
            throw PKIError(.store, "the CA store \(display) failed: \(Self.describe(error)); nothing was changed")
        }
    }

    func writeTransaction<T>(lockKey: String, _ body: () throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        _ = try execute("BEGIN", [])
        return try commitOrRollBack {
            _ = try execute("SELECT pg_advisory_xact_lock(hashtext($1))", [.text(lockKey)])
            return try body()
        }
    }

    private let closed = NIOLockedValueBox(false)

    /// Closes the connection once (postgres-nio insists on a close before the connection is released).
    func close() {
        guard
            closed.withLockedValue({ done in
                defer { done = true }
                return !done
            })
        else { return }
        let future: EventLoopFuture<Void> = connection.close()
        _ = try? future.wait()
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] { return message }
            if let underlying = error.underlying { return describe(underlying) }
            return "\(error.code)"
        }
        // NIO's connection errors end in "(errno: N)": the system's words for N say it best.
        let text = "\(error)"
        if let range = text.range(of: "(errno: "), let number = Int32(text[range.upperBound...].prefix { $0.isNumber })
        {
            return String(cString: strerror(number)).lowercased()
        }
        return text
    }
}

/// A `postgres://USER:PASSWORD@HOST:PORT/DATABASE` connection string, parsed.
struct PostgresLocation: Sendable, Equatable {
    var host: String
    var port: Int
    var user: String
    var password: String?
    var database: String?
    /// Whether the connection is TLS, the server verified against the system's roots or `sslrootcert`.
    var verifyServer: Bool
    /// `sslrootcert`: the CA file that the server's certificate must chain to.
    var rootCertificate: String?

    /// Loopback needs no TLS; anywhere else the server is verified unless `sslmode=disable` says otherwise.
    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host == "[::1]" || host.hasPrefix("127.")
    }

    /// The driver's TLS setting: off, or TLS 1.2+ with the server's certificate (and, for a DNS name, its name)
    /// verified.
    func tls() throws -> PostgresConnection.Configuration.TLS {
        guard verifyServer else { return .disable }
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.certificateVerification = .fullVerification
        if let rootCertificate { configuration.trustRoots = .file(rootCertificate) }
        do {
            return .require(try NIOSSLContext(configuration: configuration))
        } catch {
            throw PKIError(
                .store, "cannot use sslrootcert=\(rootCertificate ?? "(system roots)"): \(error); give a PEM CA file")
        }
    }

    /// The string without its password, for messages and logs.
    var display: String { "postgres://\(user)@\(host):\(port)/\(database ?? user)" }

    init(_ text: String) throws {
        guard let components = URLComponents(string: text),
            components.scheme == "postgres" || components.scheme == "postgresql",
            let host = components.host, !host.isEmpty
        else {
            throw PKIError.invalidArgument(
                "the CA store '\(Self.redacted(text))' is not a connection string; use postgres://USER:PASSWORD@HOST:PORT/DATABASE"
            )
        }
        self.host = host
        port = components.port ?? 5432
        user = components.user.flatMap { $0.removingPercentEncoding } ?? "postgres"
        password = components.password.flatMap { $0.removingPercentEncoding }
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        database = path.isEmpty ? nil : path
        var query: [String: String] = [:]
        for item in components.queryItems ?? [] { query[item.name] = item.value ?? "" }
        rootCertificate = query["sslrootcert"]
        switch query["sslmode"] {
        case nil: verifyServer = !Self.isLoopback(host)
        case "disable": verifyServer = false
        case "verify-full": verifyServer = true
        case let mode?:
            throw PKIError.invalidArgument(
                "sslmode=\(mode) is not offered: use sslmode=verify-full (the server's certificate and name checked, with sslrootcert=FILE for a private CA) or sslmode=disable on a trusted network"
            )
        }
        for name in query.keys where !["sslmode", "sslrootcert"].contains(name) {
            throw PKIError.invalidArgument(
                "unknown connection parameter '\(name)' in the CA store address; known: sslmode, sslrootcert")
        }
    }

    /// `text` with whatever sits between `:` and `@` in its authority replaced, so no message shows a password.
    static func redacted(_ text: String) -> String {
        guard let at = text.firstIndex(of: "@"), let scheme = text.range(of: "://"), scheme.upperBound < at,
            let colon = text[scheme.upperBound..<at].firstIndex(of: ":")
        else { return text }
        return String(text[..<text.index(after: colon)]) + "***" + String(text[at...])
    }
}
