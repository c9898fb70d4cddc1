import ArgumentParser
import Foundation
import Logging
import SecureChannelPKI

/// `--log-format text|json`: one line per event on stderr.
enum LogFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json

    func makeLogger(label: String, level: Logger.Level = .info) -> Logger {
        var logger: Logger
        switch self {
        case .text: logger = Logger(label: label) { _ in TextLogHandler() }
        case .json: logger = Logger(label: label) { JSONLogHandler(label: $0) }
        }
        logger.logLevel = level
        return logger
    }
}

/// Writes each log event as one JSON object on stderr: `time`, `level`, `label`, `message` and the metadata
/// (counts and durations as JSON numbers, everything else as strings). The field names are documented in the
/// README ("Logs") and stable.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var object: [String: Any] = [
            "time": LogTimestamp.now(),
            "level": event.level.rawValue,
            "label": label,
            "message": event.message.description,
        ]
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) {
            object[key] = Self.json(value)
        }
        guard
            let data = try? JSONSerialization.data(
                withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        else {
            return
        }
        Console.write(STDERR_FILENO, String(decoding: data, as: UTF8.self) + "\n", onClosedPipe: .drop)
    }

    /// Numbers stay numbers; anything else is its text.
    static func json(_ value: Logger.MetadataValue) -> Any {
        if case .stringConvertible(let convertible) = value {
            if let number = convertible as? Int { return number }
            if let number = convertible as? Double, number.isFinite { return number }
        }
        return value.description
    }
}

/// Writes `TIME LEVEL message` lines on stderr; the message already carries the details (metadata is for JSON).
struct TextLogHandler: LogHandler {
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let line = "\(LogTimestamp.now()) \(event.level.rawValue) \(event.message)\n"
        Console.write(STDERR_FILENO, line, onClosedPipe: .drop)
    }
}

/// UTC timestamps for log lines (`2026-11-27T07:50:47.123Z`), by the PKI's one date formatter (`gmtime_r`: a
/// Foundation `ISO8601DateFormatter` per line cost a fifth of the server's CPU under a handshake load, BENCHMARKS.md).
enum LogTimestamp {
    /// The current time, ISO 8601 with milliseconds, UTC.
    static func now() -> String { CertificateDescription.format(Date(), milliseconds: true) }
}
