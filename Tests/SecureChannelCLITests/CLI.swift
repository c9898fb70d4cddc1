import Foundation
import SecureChannelCLI
import SecureChannelPKI
import TestSupport
import Testing

/// Runs the built `securechannel` binary.
enum CLI {
    static func run(
        _ arguments: [String], stdin: String? = nil, environment: [String: String]? = nil,
        timeout: Double = 60
    ) async throws -> ProcessResult {
        try await Tools.run(
            try Tools.securechannel(), arguments, stdin: stdin, environment: environment, timeout: timeout)
    }

    /// Runs and requires exit status 0.
    @discardableResult
    static func ok(_ arguments: [String], stdin: String? = nil) async throws -> ProcessResult {
        let result = try await run(arguments, stdin: stdin)
        #expect(result.status == 0, "securechannel \(arguments.joined(separator: " ")) failed: \(result.stderr)")
        return result
    }

    /// Makes Barry's CA with Jill (server: localhost, 127.0.0.1) and Chris (client) in `dir`: TestSupport's one
    /// test PKI, written where the CLI writes it (`ca init` and `ca issue` themselves are tested in CACommandTests).
    static func barryJillChris(in dir: String, keyType: String = "ecdsa-p256") async throws {
        let type = try #require(KeyType(rawValue: keyType), "unknown key type \(keyType)")
        _ = try TestPKI(keyType: type, in: dir)
    }
}
