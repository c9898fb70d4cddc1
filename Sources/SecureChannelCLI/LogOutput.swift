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

/// Writes each log event as one JSON object on stderr: `time`, `level`, `label`, `message` and the metadata.
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
            "time": ISO8601DateFormatter().string(from: Date()),
            "level": event.level.rawValue,
            "label": label,
            "message": event.message.description,
        ]
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) {
            object[key] = value.description
        }
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else {
            return
        }
        FileHandle.standardError.write(data + Data("\n".utf8))
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
        let line = "\(ISO8601DateFormatter().string(from: Date())) \(event.level.rawValue) \(event.message)\n"
        FileHandle.standardError.write(Data(line.utf8))
    }
}
