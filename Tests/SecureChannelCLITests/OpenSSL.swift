import TestSupport
import Testing

/// Runs the openssl binary and records a test issue when it fails.
enum OpenSSL {
    static func run(_ arguments: [String]) async throws {
        let result = try await Tools.run(try Tools.require("openssl"), arguments)
        #expect(result.status == 0, "openssl \(arguments.joined(separator: " ")): \(result.stderr)")
    }
}
