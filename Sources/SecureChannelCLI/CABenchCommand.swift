import ArgumentParser
import Foundation
import SecureChannel
import SecureChannelEST
import SecureChannelPKI

/// `securechannel ca bench` (hidden; `Benchmarks/ca-scale.sh` runs it): the CA's costs at one inventory size.
struct CABenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Fill a new CA's store with synthetic records, then time issuance, a CRL and a listing.",
        shouldDisplay: false
    )

    @Option(help: "A new directory for the CA (removed by the caller).", completion: .directory)
    var dir: String

    @Option(help: "Synthetic records in the store before the timed issuances.")
    var size: Int

    @Option(help: "Percent of them revoked.")
    var revokedPercent = 10

    @Option(help: "Certificates issued in the timed run.")
    var issues = 200

    func validate() throws {
        guard size >= 0 else { throw ValidationError("--size must be 0 or more (got \(size))") }
        guard issues > 0 else { throw ValidationError("--issues must be 1 or more (got \(issues))") }
        guard (0...100).contains(revokedPercent) else {
            throw ValidationError("--revoked-percent must be 0 to 100 (got \(revokedPercent))")
        }
    }

    func run() async throws {
        let result = try CAScaleBenchmark.run(
            directory: dir, size: size, revokedPercent: revokedPercent, issues: issues)
        Console.out(try JSONText.encode(result))
    }
}

/// `securechannel ca bench-renew` (hidden; `Benchmarks/est-renewals.sh` runs it): renewals per second at one
/// online CA, with a client certificate it issued.
struct CABenchRenewCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-renew",
        abstract: "Renew one certificate at an online CA as fast as it answers; print renewals per second (JSON).",
        shouldDisplay: false
    )

    @Option(help: ArgumentHelp("The online CA: https://HOST:PORT.", valueName: "url"))
    var caURL: String

    @Option(help: ArgumentHelp("A certificate of that CA.", valueName: "file"), completion: .file())
    var cert: String

    @Option(help: ArgumentHelp("Its key.", valueName: "file"), completion: .file())
    var key: String

    @Option(help: ArgumentHelp("The CA bundle.", valueName: "file"), completion: .file())
    var ca: String

    @Option(help: "Seconds to run.")
    var seconds = 10.0

    @Option(help: "Renewals in flight at once.")
    var concurrency = 4

    func validate() throws {
        guard seconds > 0, concurrency > 0 else {
            throw ValidationError("--seconds and --concurrency must be positive")
        }
    }

    func run() async throws {
        let result = try await RenewalLoad.run(
            url: caURL, files: TLSMaterialFiles(certificate: cert, key: key, ca: ca), seconds: seconds,
            concurrency: concurrency)
        Console.out(try JSONText.encode(result))
    }
}
