import ArgumentParser
import Foundation
import Logging

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

/// UTC timestamps for log lines (`2026-11-27T07:50:47.123Z`), formatted with `gmtime_r`: a Foundation
/// `ISO8601DateFormatter` per line cost a fifth of the server's CPU under a handshake load (perf, BENCHMARKS.md).
enum LogTimestamp {
    /// The current time, ISO 8601 with milliseconds, UTC.
    static func now() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        var seconds = spec.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(spec.tv_nsec / 1_000_000), 3))Z"
    }
}
