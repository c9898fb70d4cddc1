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

    /// For `transform:`: one line listing the choices (ArgumentParser lists six or more on separate lines).
    static func argument(_ text: String) throws -> KeyType {
        guard let type = KeyType(argument: text) else {
            throw ArgumentText("use one of \(allValueStrings.joined(separator: ", "))")
        }
        return type
    }
}

extension RevocationReason: ExpressibleByArgument {
    public init?(argument: String) {
        guard let reason = try? RevocationReason(parsing: argument) else { return nil }
        self = reason
    }

    public var defaultValueDescription: String { name }
    public static var allValueStrings: [String] { allCases.map(\.name) }

    /// For `transform:`: one line listing the choices.
    static func argument(_ text: String) throws -> RevocationReason {
        guard let reason = RevocationReason(argument: text) else {
            throw ArgumentText("use one of \(allValueStrings.joined(separator: ", "))")
        }
        return reason
    }
}

/// The error text ArgumentParser appends to "The value '…' is invalid for '--flag <value>'".
struct ArgumentText: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Checks shared by the commands' `validate()`: a failure is a usage error.
enum Check {
    /// Standard input can be read once: at most one of `paths` may be `-`.
    static func oneStandardInput(_ paths: (flag: String, path: String?)...) throws {
        let dashes = paths.filter { $0.path == "-" }.map(\.flag)
        guard dashes.count <= 1 else {
            throw ValidationError(
                "only one input can be - (standard input), not \(dashes.joined(separator: " and "))")
        }
    }

    /// `--days` and the like: 1 up to the longest validity the CA issues.
    static func days(_ days: Int, flag: String = "--days") throws {
        guard days > 0 else { throw ValidationError("\(flag) must be 1 or more (got \(days))") }
        guard days <= IssuanceRequest.maximumDays else {
            throw ValidationError(
                "\(flag) \(days) is more than \(IssuanceRequest.maximumDays); choose a shorter validity")
        }
    }
}

/// `--key-type`: shared by `ca init`, `ca issue …` and `cert request`.
struct KeyTypeOption: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Key type: \(KeyType.allValueStrings.joined(separator: ", ")) (default: \(KeyType.default.rawValue)).",
            valueName: "type"),
        completion: .list(KeyType.allValueStrings), transform: KeyType.argument)
    var keyType: KeyType = .default
}

/// `--server-spiffe-id`: shared by `send` and `tunnel client`.
struct ServerSPIFFEOption: ParsableArguments {
    @Option(
        name: .customLong("server-spiffe-id"),
        help: ArgumentHelp(
            "Verify the server by its SPIFFE ID instead of its name (* one path segment, a final ** the rest).",
            valueName: "pattern"))
    var serverSPIFFEID: String?
}
