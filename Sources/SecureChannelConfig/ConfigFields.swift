import Foundation
import NIOCore
import SecureChannel
import SecureChannelPKI
import Yams

/// The keys of one section of a configuration file (or the flags given on a command line), each named like its
/// flag without the dashes (`idle-timeout: 60` is `--idle-timeout 60`), with where each value came from so that an
/// error can point at it. Flags and file go through the same checks: a value means the same in both places.
public struct ConfigFields: Sendable {
    /// One value: a scalar, or a list of scalars.
    public struct Value: Sendable {
        /// A scalar (numbers and booleans as written).
        public var scalar: String?
        /// A list of scalars.
        public var list: [String]?
        /// Where it came from: `line N` (of the file) or `the command line`.
        public var origin: String
        /// What a relative path in it is relative to: the file's directory, or the current directory for a flag.
        public var baseDirectory: String
    }

    /// The values, by key.
    public private(set) var values: [String: Value] = [:]
    /// The directory relative paths given here are resolved against.
    public let baseDirectory: String

    /// Fields given on the command line (relative paths: the current directory).
    public init(commandLineIn baseDirectory: String = FileManager.default.currentDirectoryPath) {
        self.baseDirectory = baseDirectory
    }

    /// Fields from a YAML mapping; a value that is neither a scalar nor a list of scalars is an error.
    init(mapping: Node.Mapping, baseDirectory: String) throws {
        self.baseDirectory = baseDirectory
        for (key, node) in mapping {
            let line = key.mark?.line ?? 0
            guard let name = key.string else {
                throw SecureChannelError(.configuration, "line \(line): keys must be names")
            }
            let origin = "line \(node.mark?.line ?? line)"
            if let text = node.scalar?.string {
                values[name] = Value(scalar: text, origin: origin, baseDirectory: baseDirectory)
            } else if let items = node.sequence {
                let texts = try items.map { item -> String in
                    guard let text = item.scalar?.string else {
                        throw SecureChannelError(.configuration, "\(origin): '\(name)' entries must be plain values")
                    }
                    return text
                }
                values[name] = Value(list: texts, origin: origin, baseDirectory: baseDirectory)
            } else {
                throw SecureChannelError(.configuration, "\(origin): '\(name)' must be a value or a list of values")
            }
        }
    }

    /// Sets a scalar given as a flag.
    public mutating func set(_ key: String, _ value: (some CustomStringConvertible)?) {
        guard let value else { return }
        values[key] = Value(scalar: value.description, origin: "the command line", baseDirectory: baseDirectory)
    }

    /// Sets a list given as a repeatable flag (an empty list sets nothing).
    public mutating func set(_ key: String, list: [String]) {
        guard !list.isEmpty else { return }
        values[key] = Value(list: list, origin: "the command line", baseDirectory: baseDirectory)
    }

    /// Sets a flag that was given (a flag not given leaves the file's value).
    public mutating func set(_ key: String, flag: Bool) {
        if flag { values[key] = Value(scalar: "true", origin: "the command line", baseDirectory: baseDirectory) }
    }

    /// These fields with `overrides` on top (flags override the file).
    public func overridden(by overrides: ConfigFields) -> ConfigFields {
        var merged = self
        merged.values.merge(overrides.values) { $1 }
        return merged
    }

    /// Whether `key` has a value.
    public func has(_ key: String) -> Bool { values[key] != nil }

    /// Throws for the first key not in `allowed`, naming its place.
    func checkKeys(_ allowed: Set<String>, what: String) throws {
        for (key, value) in values.sorted(by: { $0.key < $1.key }) where !allowed.contains(key) {
            let hint = Suggestion.closest(to: key, in: allowed).map { " (did you mean '\($0)'?)" } ?? ""
            throw SecureChannelError(
                .configuration,
                "\(value.origin): unknown key '\(key)' for \(what)\(hint); known: \(allowed.sorted().joined(separator: ", "))"
            )
        }
    }

    /// How to switch `key` on, in the words of where the values came from: `pass --unsafe-target` on the
    /// command line, `set 'unsafe-target: true'` in a file (judged by `near`, the key the problem is about).
    func advice(_ key: String, _ value: String = "true", near: String) -> String {
        if values[near]?.origin == "the command line" {
            return value == "true" ? "pass --\(key)" : "pass --\(key) \(value)"
        }
        return "set '\(key): \(value)'"
    }

    func failure(_ key: String, _ problem: String) -> SecureChannelError {
        let origin = values[key]?.origin ?? "the configuration"
        let name = origin == "the command line" ? "--\(key)" : "'\(key)'"
        return SecureChannelError(.configuration, "\(origin): \(name) \(problem)")
    }

    /// A scalar, or nil when absent.
    func optionalString(_ key: String) throws -> String? {
        guard let value = values[key] else { return nil }
        guard let text = value.scalar, !text.isEmpty else { throw failure(key, "must be a single value") }
        return text
    }

    /// A required scalar.
    func string(_ key: String, hint: String) throws -> String {
        guard let text = try optionalString(key) else {
            throw SecureChannelError(
                .configuration, "missing \(hint): give --\(key) or '\(key):' in the configuration file")
        }
        return text
    }

    /// A required path, resolved against the directory of wherever the value came from.
    func path(_ key: String, hint: String) throws -> String { absolute(try string(key, hint: hint), key: key) }

    /// `path` as given for `key`: relative to the configuration file's directory if it came from the file, to the
    /// current directory if it came from a flag.
    func absolute(_ path: String, key: String) -> String {
        path.hasPrefix("/") ? path : "\(values[key]?.baseDirectory ?? baseDirectory)/\(path)"
    }

    /// A list (a single scalar counts as a list of one); empty when absent.
    func list(_ key: String) -> [String] {
        guard let value = values[key] else { return [] }
        return value.list ?? value.scalar.map { [$0] } ?? []
    }

    /// A boolean; false when absent.
    func flag(_ key: String) throws -> Bool {
        guard let text = try optionalString(key) else { return false }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw failure(key, "must be true or false (got '\(text)')")
        }
    }

    /// A positive number of seconds, or nil when absent (the library configuration's default then holds).
    func seconds(_ key: String) throws -> TimeAmount? {
        guard let text = try optionalString(key) else { return nil }
        guard let number = Double(text), number > 0, number.isFinite, number < 1e9 else {
            throw failure(key, "must be a positive number of seconds (got '\(text)')")
        }
        return .nanoseconds(Int64(number * 1e9))
    }

    /// A positive integer (or, with `minimum: 0`, zero too), or nil when absent.
    func integer(_ key: String, minimum: Int = 1) throws -> Int? {
        guard let text = try optionalString(key) else { return nil }
        guard let number = Int(text), number >= minimum else {
            throw failure(key, "must be \(minimum == 0 ? "0 or more" : "a positive integer") (got '\(text)')")
        }
        return number
    }

    /// One of `choices`, or nil when absent.
    func choice(_ key: String, _ choices: [String]) throws -> String? {
        guard let text = try optionalString(key) else { return nil }
        guard choices.contains(text) else {
            throw failure(key, "must be \(choices.joined(separator: " or ")) (got '\(text)')")
        }
        return text
    }

    /// `HOST:PORT` (IPv6 in brackets) or, with `allowUnix`, `unix:/path` (relative paths resolved like files).
    func endpoint(_ key: String, hint: String, allowUnix: Bool = true) throws -> SocketEndpoint {
        let text = try string(key, hint: hint)
        let parsed: SocketEndpoint
        do {
            parsed = try SocketEndpoint.parse(text, allowUnix: allowUnix)
        } catch let error as SecureChannelError {
            throw failure(key, "is not usable: \(error.message)")
        }
        if case .unix(let path) = parsed { return .unix(path: absolute(path, key: key)) }
        return parsed
    }

    /// `HOST:PORT`, or nil when absent.
    func hostPort(_ key: String) throws -> (host: String, port: Int)? {
        guard has(key) else { return nil }
        guard case .tcp(let host, let port) = try endpoint(key, hint: "HOST:PORT", allowUnix: false) else { return nil }
        return (host, port)
    }

    /// The CRL fetched from `crl-url`, once there is one.
    private func fetchedCRL() throws -> String? {
        guard has("crl-url") else { return nil }
        let file = OnlineCAKeys.crlFile(for: try path("cert", hint: "our certificate"))
        return FileManager.default.fileExists(atPath: file) ? file : nil
    }

    /// `--cert`, `--key`, `--ca`, `--crl`, `--crl-expired`: loaded once here, and our certificate checked to fit
    /// `purpose`, so that a bad file is reported now (`config check` too), in this layer's words.
    func materialFiles(for purpose: CertificatePurpose) throws -> TLSMaterialFiles {
        let files = TLSMaterialFiles(
            certificate: try path("cert", hint: "our certificate"), key: try path("key", hint: "our private key"),
            ca: try path("ca", hint: "the CA certificate"),
            // With crl-url, the CRL fetched from the online CA (kept beside our certificate) is enforced too. The
            // ends fetch it before they get here; before the first fetch (`config check`) there is none to read.
            crls: list("crl").map { absolute($0, key: "crl") } + (try fetchedCRL().map { [$0] } ?? []),
            allowExpiredCRL: try choice("crl-expired", ["deny", "allow"]) == "allow")
        do {
            try files.load().identity.checkFits(purpose)
        } catch let error as SecureChannelError where error.code == .expiredCRL {
            // The code beneath stays; the way out is said in this layer's words.
            let origin = values["crl"]?.origin ?? "the command line"
            let advice = origin == "the command line" ? "pass --crl-expired allow" : "set 'crl-expired: allow'"
            throw SecureChannelError(error.code, error.message + ": " + advice)
        }
        return files
    }

    /// `--tls-min`.
    func tlsPolicy() throws -> TLSPolicy {
        var policy = TLSPolicy.default
        if let text = try choice("tls-min", ["1.3", "1.2"]), let version = TLSPolicy.MinimumVersion(rawValue: text) {
            policy.minimumVersion = version
        }
        if values["keylog"] != nil { policy.keyLog = try KeyLog.file(try path("keylog", hint: "the key log file")) }
        return policy
    }

    /// `--allow-cn`, `--allow-dns`, `--allow-uri`, `--allow-any-client`; at least one.
    func accessRules() throws -> AccessRules {
        let rules = AccessRules(
            commonNames: Set(list("allow-cn")), dnsNames: Set(list("allow-dns")),
            uris: Set(list("allow-uri")), spiffeIDs: Set(list("allow-spiffe-id")), emails: Set(list("allow-email")),
            organizationalUnits: Set(list("allow-ou")), publicKeySHA256: Set(list("allow-spki-sha256")),
            allowAnyClient: try flag("allow-any-client"))
        guard !rules.isEmpty else {
            throw SecureChannelError(
                .configuration,
                "no client is allowed: give --allow-cn, --allow-dns, --allow-uri, --allow-spiffe-id, --allow-email, --allow-ou or --allow-spki-sha256 (or allow-cn: [...] in the file), or --allow-any-client to accept any client of the CA"
            )
        }
        do {
            try rules.validate()
        } catch let error as SecureChannelError {
            // In a file the rule is a key, not a flag.
            let fromFile = values.keys.filter { $0.hasPrefix("allow-") }.contains {
                values[$0]?.origin != "the command line"
            }
            throw fromFile
                ? SecureChannelError(error.code, error.message.replacingOccurrences(of: "--allow-", with: "allow-"))
                : error
        }
        return rules
    }
}

/// "Did you mean …?" for a misspelt name.
public enum Suggestion {
    /// The name in `candidates` closest to `word`, if it is near enough to be a slip (edit distance 2 or less, or
    /// a prefix either way).
    public static func closest(to word: String, in candidates: some Collection<String>) -> String? {
        let scored = candidates.map { ($0, distance($0, word)) }.sorted { ($0.1, $0.0) < ($1.1, $1.0) }
        if let best = scored.first, best.1 <= 2 { return best.0 }
        return candidates.sorted().first { $0.hasPrefix(word) || word.hasPrefix($0) }
    }

    /// Edit distance: insertions, deletions, substitutions.
    public static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a)
        let b = Array(b)
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var row = Array(0...b.count)
        for i in 1...a.count {
            var previous = row[0]
            row[0] = i
            for j in 1...b.count {
                let current = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
                previous = current
            }
        }
        return row[b.count]
    }
}
