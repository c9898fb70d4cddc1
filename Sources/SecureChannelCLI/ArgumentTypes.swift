import ArgumentParser
import SecureChannelPKI

// Values checked while the command line is parsed, so a bad one is a usage error (exit 64) with the valid
// choices, and shells complete them.

extension KeyType: ExpressibleByArgument {
    public init?(argument: String) {
        guard let type = try? KeyType(parsing: argument) else { return nil }
        self = type
    }

    public var defaultValueDescription: String { rawValue }
    public static var allValueStrings: [String] { allCases.map(\.rawValue) }
}

extension RevocationReason: ExpressibleByArgument {
    public init?(argument: String) {
        guard let reason = try? RevocationReason(parsing: argument) else { return nil }
        self = reason
    }

    public var defaultValueDescription: String { name }
    public static var allValueStrings: [String] { allCases.map(\.name) }
}

/// The error text ArgumentParser appends to "The value '…' is invalid for '--flag <value>'".
struct ArgumentText: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Checks shared by the commands' `validate()`: a failure is a usage error.
enum Check {
    /// `--days` and the like: 1 up to the longest validity the CA issues.
    static func days(_ days: Int, flag: String = "--days") throws {
        guard days > 0 else { throw ValidationError("\(flag) must be 1 or more (got \(days))") }
        guard days <= IssuanceRequest.maximumDays else {
            throw ValidationError(
                "\(flag) \(days) is more than \(IssuanceRequest.maximumDays); choose a shorter validity")
        }
    }
}
