import Foundation
import SecureChannel

/// `renew-from`, `crl-url` and `crl-refresh` of an end (`serve`, a server or client tunnel): where it renews its
/// own certificate and fetches the CA's CRL. Plain values: the application makes the renewal and CRL services.
public struct OnlineCAKeys: Sendable, Equatable {
    /// `renew-from`: the online CA's `https://HOST:PORT` that renews our certificate.
    public var renewFrom: String?
    /// `crl-url`: the online CA's `https://HOST:PORT` whose CRL we enforce.
    public var crlURL: String?
    /// `crl-refresh`: seconds between CRL fetches (default 60).
    public var crlRefresh: TimeInterval
    /// Our certificate, key and CA bundle (absolute).
    public var certificate: String
    public var key: String
    public var ca: String

    /// Where the fetched CRL is kept (and enforced from): beside our certificate.
    public var crlFile: String { Self.crlFile(for: certificate) }

    static func crlFile(for certificate: String) -> String { certificate + ".crl" }

    /// The keys, as a section's or the command line's.
    public static let names: Set<String> = ["renew-from", "crl-url", "crl-refresh"]
}

extension ConfigFields {
    /// The end's online-CA keys, or nil when it has neither `renew-from` nor `crl-url`.
    public func onlineCA() throws -> OnlineCAKeys? {
        let renewFrom = try optionalString("renew-from")
        let crlURL = try optionalString("crl-url")
        for (key, value) in [("renew-from", renewFrom), ("crl-url", crlURL)] {
            if let value, !(value.hasPrefix("https://") && value.count > "https://".count) {
                throw failure(key, "must be the online CA's https://HOST:PORT (got '\(value)')")
            }
        }
        if has("crl-refresh") && crlURL == nil {
            throw failure("crl-refresh", "goes with crl-url (how often to fetch the CA's CRL)")
        }
        guard renewFrom != nil || crlURL != nil else { return nil }
        var refresh: TimeInterval = 60
        if let text = try optionalString("crl-refresh") {
            // `60` or `60s`, as on the command line.
            guard let value = Double(text.hasSuffix("s") ? String(text.dropLast()) : text), value >= 1, value < 1e7
            else {
                throw failure("crl-refresh", "must be a number of seconds, 1 or more, e.g. 60 or 60s (got '\(text)')")
            }
            refresh = value
        }
        return OnlineCAKeys(
            renewFrom: renewFrom, crlURL: crlURL, crlRefresh: refresh,
            certificate: try path("cert", hint: "our certificate"), key: try path("key", hint: "our private key"),
            ca: try path("ca", hint: "the CA certificate"))
    }
}

extension ConfigFile {
    /// The online-CA keys of the `serve:` section with `overrides` on top.
    public func serveOnlineCA(overriddenBy overrides: ConfigFields) throws -> OnlineCAKeys? {
        guard let serve else { return nil }
        return try Self.wrap(source, "serve") { try serve.overridden(by: overrides).onlineCA() }
    }

    /// The `serve:` section's `log-format` with `overrides` on top (read before anything is loaded).
    public func serveLogFormat(overriddenBy overrides: ConfigFields) throws -> String {
        guard let serve else { return "text" }
        return try Self.wrap(source, "serve") {
            try serve.overridden(by: overrides).choice("log-format", ["text", "json"]) ?? "text"
        }
    }

    /// The online-CA keys of each tunnel that has some, by the tunnel's name.
    public func tunnelOnlineCA() throws -> [String: OnlineCAKeys] {
        var result: [String: OnlineCAKeys] = [:]
        for (index, entry) in tunnelEntries.enumerated() {
            let name = (try? entry.fields.optionalString("name")) ?? nil
            let keys = try Self.wrap(source, "tunnel '\(name ?? "#\(index + 1)")' (line \(entry.line))") {
                try entry.fields.onlineCA()
            }
            if let name, let keys { result[name] = keys }
        }
        return result
    }
}
