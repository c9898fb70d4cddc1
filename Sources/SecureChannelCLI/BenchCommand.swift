import ArgumentParser
import Foundation
import NIOCore
import SecureChannel
import SecureChannelBench

/// `securechannel bench`: a load generator for any mTLS line-echo server.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure an mTLS line-echo server: handshakes/s, messages/s with latency, or MB/s.",
        discussion: """
            Modes: handshake (new connection + full mTLS handshake + one echo, per loop), echo (persistent \
            connections, one message at a time, latency percentiles from HdrHistogram; each message carries its \
            connection, sequence number and a checksum, so lost, corrupted, duplicated or reordered replies are \
            counted), bulk (messages of --size \
            streamed with 32 outstanding per connection, replies read and discarded). \
            Works against any server that echoes lines: securechannel serve, stunnel in front of an echo service, \
            openssl s_server... Build with 'swift build -c release' before measuring. Every handshake is a full \
            one: swift-nio-ssl has no client-side session cache, so there is no resumption to measure.

            EXAMPLES:
              securechannel bench --connect localhost:8443 --cert pki/Chris.crt --key \\
                  pki/Chris.key --ca pki/ca.crt --mode echo --connections 100 \\
                  --duration 10
              securechannel bench --connect localhost:8443 --cert pki/Chris.crt \\
                  --key pki/Chris.key --ca pki/ca.crt --mode handshake --json
              # a tunnel client's entrance
              securechannel bench --connect 127.0.0.1:9000 --plaintext --mode echo \\
                  --connections 100
            """
    )

    @Option(help: ArgumentHelp("Server address.", valueName: "host:port"), transform: Endpoint.argument)
    var connect: Endpoint

    @Option(
        help: ArgumentHelp("Our certificate (PEM or DER; intermediates after the leaf).", valueName: "file"),
        completion: .file())
    var cert: String?

    @Option(
        help: ArgumentHelp("Our private key (PKCS#8, PKCS#1 or SEC1; PEM or DER).", valueName: "file"),
        completion: .file())
    var key: String?

    @Option(
        help: ArgumentHelp(
            "The CA certificate(s) the server must chain to. Only these are trusted.", valueName: "file"),
        completion: .file())
    var ca: String?

    @Option(
        name: .customLong("crl"),
        help: ArgumentHelp("A CRL from the CA (repeatable); a revoked server is refused.", valueName: "file"),
        completion: .file())
    var crls: [String] = []

    @Option(
        name: .customLong("tls-min"),
        help: ArgumentHelp("Oldest TLS version: 1.3 (default) or 1.2.", valueName: "version"))
    var tlsMinimum: TLSPolicy.MinimumVersion = .tls13

    @Flag(
        help:
            "Plain TCP, no TLS, nothing verified: to measure the plaintext entrance of a tunnel client or an echo backend (then --cert/--key/--ca are not used)."
    )
    var plaintext = false

    @Option(
        help: ArgumentHelp(
            "Name the server certificate must carry (default: the host of --connect).", valueName: "name"))
    var serverName: String?

    @Option(help: "handshake, echo or bulk.")
    var mode: LoadGenerator.Mode

    @Option(help: ArgumentHelp("Concurrent connections (default 10; bulk 1).", valueName: "n"))
    var connections: Int?

    @Option(help: ArgumentHelp("Messages (or handshakes) per connection; default: run for --duration.", valueName: "m"))
    var messages: Int?

    @Option(help: ArgumentHelp("Bytes per message (default 64; bulk 16384).", valueName: "bytes"))
    var size: Int?

    @Option(help: ArgumentHelp("Seconds to run when --messages is not given.", valueName: "seconds"))
    var duration: Double = 10

    @Flag(help: "Print one JSON object on stdout.")
    var json = false

    @Option(
        help: ArgumentHelp(
            "Append TLS secrets to FILE (NSS key log, 0600; also SSLKEYLOGFILE). Debugging only.", valueName: "file"),
        completion: .file())
    var keylog: String?

    func validate() throws {
        if plaintext {
            if cert != nil || key != nil || ca != nil || !crls.isEmpty {
                throw ValidationError("--plaintext uses no TLS: leave out --cert, --key, --ca and --crl")
            }
        } else if cert == nil || key == nil || ca == nil {
            throw ValidationError(
                "--cert, --key and --ca are required (or --plaintext to measure a plaintext endpoint)")
        }
        if let connections, connections <= 0 { throw ValidationError("--connections must be positive") }
        if let messages, messages <= 0 { throw ValidationError("--messages must be positive") }
        if let size, size <= 0 || size > 16 * 1024 * 1024 {
            throw ValidationError("--size must be between 1 and 16777216")
        }
        guard duration > 0 else { throw ValidationError("--duration must be positive") }
    }

    func run() async throws {
        let target: LoadGenerator.Target
        if let cert, let key, let ca, !plaintext {
            let material = try TLSMaterialFiles(certificate: cert, key: key, ca: ca, crls: crls, allowExpiredCRL: false)
                .load()
            var policy = TLSPolicy(minimumVersion: tlsMinimum)
            let environment = ProcessInfo.processInfo.environment["SSLKEYLOGFILE"].flatMap { $0.isEmpty ? nil : $0 }
            if let path = keylog ?? environment {
                policy.keyLog = try KeyLog.file(path)
                Console.error("warning: \(policy.keyLog!.warning)")
            }
            target = .tls(
                MessageClientConfiguration(
                    host: connect.host, port: connect.port, serverName: serverName, identity: material.identity,
                    trust: material.trust,
                    revocation: material.revocation, tls: policy, timeout: .seconds(30)))
        } else {
            target = .plaintext(host: connect.host, port: connect.port)
        }
        let generator = LoadGenerator(
            target: target,
            options: .init(
                mode: mode, connections: connections, messages: messages, size: size, duration: duration))
        let progress = LoadGenerator.Progress()
        let ticker =
            isatty(STDERR_FILENO) == 1
            ? Task {
                let start = Date()
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(1))
                    if Task.isCancelled { break }
                    let now = progress.snapshot
                    let line = String(
                        format: "\r%5.1f s: %d messages, %d handshakes, %d errors   ",
                        Date().timeIntervalSince(start), now.messages, now.handshakes, now.errors)
                    Console.write(STDERR_FILENO, line, onClosedPipe: .exit)
                }
            } : nil
        let report: LoadGenerator.Report
        do {
            report = try await generator.run(progress: progress)
        } catch {
            ticker?.cancel()
            await ticker?.value
            throw error
        }
        // The ticker has written its last line before the report: no progress line after the table.
        ticker?.cancel()
        await ticker?.value
        if ticker != nil { Console.write(STDERR_FILENO, "\n", onClosedPipe: .exit) }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            Console.out(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            Console.out(Self.table(report))
        }
        if report.errors > 0, report.messagesPerSecond ?? 0 == 0 {
            throw CLIError("every attempt failed: \(report.firstError ?? "unknown error")")
        }
    }

    static func table(_ report: LoadGenerator.Report) -> String {
        func number(_ value: Double?, _ digits: Int = 1) -> String {
            value.map { String(format: "%.\(digits)f", $0) } ?? "-"
        }
        var rows = [
            ["mode", report.mode.rawValue],
            ["connections", "\(report.connections)"],
            ["seconds", number(report.seconds, 2)],
            ["errors", "\(report.errors)" + (report.firstError.map { " (first: \($0))" } ?? "")],
            ["handshakes/s", number(report.handshakesPerSecond)],
            ["messages/s", number(report.messagesPerSecond)],
            ["MB/s", number(report.megabytesPerSecond, 2)],
            ["messages", "\(report.messages)"],
        ]
        if let integrity = report.integrity {
            rows.append([
                "lost / corrupted / out of order",
                "\(integrity.lost) / \(integrity.corrupted) / \(integrity.outOfOrder)",
            ])
        }
        if let latency = report.latencyMs {
            rows.append([
                "latency ms p50/p90/p99/p99.9/max",
                [latency.p50, latency.p90, latency.p99, latency.p999, latency.max].map { String(format: "%.3f", $0) }
                    .joined(separator: " / "),
            ])
        }
        rows.append(["TLS", report.session?.summary ?? "-"])
        return TextTable.render(rows)
    }
}

extension LoadGenerator.Mode: ExpressibleByArgument {}
