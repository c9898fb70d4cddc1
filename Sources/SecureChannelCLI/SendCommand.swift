import ArgumentParser
import Foundation
import NIOCore
import SecureChannel

/// `securechannel send`: the mTLS client.
struct SendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Connect to an mTLS server, send each message, print each reply.",
        discussion: """
            With no MESSAGE, sends each line of stdin (works in a pipe and interactively). The server's certificate \
            must chain to --ca and name --server-name (default: the host of --connect), strictly: an IP SAN matching \
            the address does not stand in for the name. Exits 0 only if every message got its reply.

            EXAMPLES:
              securechannel send --connect localhost:8443 --cert pki/Chris.crt \\
                  --key pki/Chris.key --ca pki/ca.crt "Hello Jill"
              securechannel send --connect localhost:8443 --cert pki/Chris.crt \\
                  --key pki/Chris.key --ca pki/ca.crt --retry 10 "survives a restart"
              printf 'one\\ntwo\\n' | securechannel send --connect 127.0.0.1:8443 \\
                  --server-name localhost --cert pki/Chris.crt --key pki/Chris.key \\
                  --ca pki/ca.crt
            """
    )

    @Option(help: ArgumentHelp("Server address.", valueName: "host:port"), transform: Endpoint.argument)
    var connect: Endpoint

    @OptionGroup var files: TLSFileOptions
    @OptionGroup var framingOptions: FramingOptions

    @Option(
        help: ArgumentHelp(
            "Name the server certificate must carry (default: the host of --connect).", valueName: "name"))
    var serverName: String?

    @OptionGroup var spiffe: ServerSPIFFEOption

    @Option(help: ArgumentHelp("Seconds to wait for the connection and for each reply.", valueName: "seconds"))
    var timeout: Double = 10

    @Option(
        help: ArgumentHelp(
            "When the connection fails or breaks, reconnect and resend up to N times (backoff 0.2 s doubling to 5 s). A message whose reply was lost is sent again.",
            valueName: "n"))
    var retry: Int = 0

    @Argument(help: "Messages to send; none: read lines from stdin.")
    var messages: [String] = []

    func validate() throws {
        guard timeout > 0 else { throw ValidationError("--timeout must be a positive number of seconds") }
        guard retry >= 0 else { throw ValidationError("--retry must be 0 or more") }
    }

    func run() async throws {
        let material: TLSMaterial
        do {
            material = try files.materialFiles().load()
        } catch let error as SecureChannelError where error.code == .expiredCRL {
            throw SecureChannelError(error.code, error.message + ": pass --crl-expired allow")
        }
        for warning in material.identity.warnings { Console.error("warning: \(warning)") }
        var policy = TLSPolicy(minimumVersion: files.tlsMinimum ?? .tls13)
        policy.keyLog = try files.keyLog(honouringEnvironment: true)
        var configuration = MessageClientConfiguration(
            host: connect.host, port: connect.port, serverName: serverName, identity: material.identity,
            trust: material.trust, revocation: material.revocation,
            tls: policy,
            framing: framingOptions.framing ?? .lines,
            maximumMessageBytes: framingOptions.maxMessageBytes ?? Framing.defaultMaximumMessageBytes,
            timeout: timeAmount(seconds: timeout))
        configuration.serverSPIFFEID = spiffe.serverSPIFFEID
        let retries = retry
        let client = ReconnectingClient(configuration: configuration, policy: RetryPolicy(retries: retries)) {
            attempt, delay, error in
            let seconds = Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18
            Console.error("retrying in \((seconds * 10).rounded() / 10) s (attempt \(attempt) of \(retries)): \(error)")
        }
        do {
            try await client.connect()
            if messages.isEmpty {
                while let line = readLine(strippingNewline: true) {
                    Console.out(try await client.send(line))
                }
            } else {
                for message in messages {
                    Console.out(try await client.send(message))
                }
            }
        } catch {
            await client.close()
            throw error
        }
        await client.close()
    }
}
