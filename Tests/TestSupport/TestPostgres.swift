import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A PostgreSQL server for the CA store tests: `.ci/run` installs Debian's postgresql, starts it on loopback and
/// sets `SECURECHANNEL_TEST_POSTGRES` to a superuser's connection string. Each test gets a database of its own.
public enum TestPostgres {
    /// The administrative connection string.
    public static let url =
        ProcessInfo.processInfo.environment["SECURECHANNEL_TEST_POSTGRES"]
        ?? "postgres://securechannel:securechannel@127.0.0.1:5432/postgres"

    /// Whether the tests that need PostgreSQL should run: psql is there and the server accepts connections, or
    /// interop is required (so that a missing server fails them).
    public static var enabled: Bool { Tools.interopRequired || (Tools.path("psql") != nil && listening) }

    /// Why they are skipped.
    public static let skipReason: Comment =
        "needs PostgreSQL and psql (.ci/run installs and starts them; or set SECURECHANNEL_TEST_POSTGRES)"

    static var listening: Bool {
        guard let components = URLComponents(string: url), let host = components.host else { return false }
        let port = components.port ?? 5432
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &address.sin_addr) == 1 else {
            return false
        }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    /// A new, empty database; drop it with ``drop(_:)``.
    public static func createDatabase() async throws -> Database {
        let name = "sc_test_\(UUID().uuidString.prefix(8).lowercased())"
        try await psql("CREATE DATABASE \(name)")
        var components = try require(URLComponents(string: url))
        components.path = "/\(name)"
        return Database(name: name, url: try require(components.string))
    }

    /// Drops a database made by ``createDatabase()`` (connections to it are ended first).
    public static func drop(_ database: Database) async {
        _ = try? await psql("DROP DATABASE IF EXISTS \(database.name) WITH (FORCE)")
    }

    /// Runs SQL as the administrator and returns psql's unaligned, tuples-only output.
    @discardableResult
    public static func psql(_ sql: String, database: Database? = nil) async throws -> String {
        let result = try await Tools.run("psql", [database?.url ?? url, "-X", "-q", "-A", "-t", "-c", sql])
        guard result.status == 0 else {
            throw ProcessEnded(name: "psql", output: "\(sql): \(result.stderr)")
        }
        return result.stdout
    }

    /// A database of one test.
    public struct Database: Sendable {
        /// Its name.
        public var name: String
        /// Its connection string.
        public var url: String
    }
}

/// Unwraps, or throws naming what was missing.
private func require<T>(_ value: T?, _ what: String = "value") throws -> T {
    guard let value else { throw ProcessEnded(name: "TestPostgres", output: "no \(what)") }
    return value
}
