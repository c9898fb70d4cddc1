import Foundation
import Histogram
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SecureChannel

/// The `bench` load generator: drives any mTLS line-echo server with ``MessageClient``s and measures.
public struct LoadGenerator: Sendable {
    /// What to measure.
    public enum Mode: String, Sendable, CaseIterable, Codable {
        /// New connection, full mTLS handshake, one echo, close; in a loop per worker.
        case handshake
        /// Persistent connections, one message at a time each, latency per message.
        case echo
        /// Persistent connections streaming messages with a window of outstanding replies.
        case bulk
    }

    /// How to run.
    public struct Options: Sendable {
        /// The mode.
        public var mode: Mode
        /// Concurrent connections (workers).
        public var connections: Int
        /// Messages per connection; nil to run for `duration`.
        public var messages: Int?
        /// Bytes per message (payload, without the newline).
        public var size: Int
        /// How long to run when `messages` is nil.
        public var duration: Double
        /// Outstanding messages per connection in bulk mode.
        public var window: Int

        /// Options with the defaults.
        public init(
            mode: Mode, connections: Int? = nil, messages: Int? = nil, size: Int? = nil, duration: Double = 10,
            window: Int = 32
        ) {
            self.mode = mode
            self.connections = connections ?? (mode == .bulk ? 1 : 10)
            self.messages = messages
            self.size = size ?? (mode == .bulk ? 16 * 1024 : 64)
            self.duration = duration
            self.window = window
        }
    }

    /// The result, in the shape `bench --json` prints.
    public struct Report: Sendable, Codable {
        /// Latency percentiles in milliseconds.
        public struct Latency: Sendable, Codable {
            /// Median.
            public var p50: Double
            /// 90th percentile.
            public var p90: Double
            /// 99th percentile.
            public var p99: Double
            /// 99.9th percentile.
            public var p999: Double
            /// Largest.
            public var max: Double
        }

        /// The mode.
        public var mode: Mode
        /// Connections (workers).
        public var connections: Int
        /// Wall-clock seconds measured.
        public var seconds: Double
        /// Failed connects or exchanges.
        public var errors: Int
        /// The first error, for the user to act on.
        public var firstError: String?
        /// Completed handshakes per second (handshake mode), else nil.
        public var handshakesPerSecond: Double?
        /// Messages (round trips) per second.
        public var messagesPerSecond: Double?
        /// Payload megabytes (10^6) per second, one way.
        public var megabytesPerSecond: Double?
        /// Latency of a round trip (echo and handshake modes), else nil.
        public var latencyMs: Latency?
        /// Negotiated parameters seen on the first connection.
        public var session: SessionInfo?
        /// Round trips completed with the right reply.
        public var messages: Int = 0
        /// Echo mode's per-message check (each message carries its connection, sequence number and a checksum),
        /// else nil.
        public var integrity: Integrity?

        /// What the echo check found. Anything but zeros is also counted in `errors`.
        public struct Integrity: Sendable, Codable, Equatable {
            /// Messages that got no reply (timeout or closed connection).
            public var lost: Int
            /// Replies whose checksum does not match their content.
            public var corrupted: Int
            /// Intact replies to another message of the connection (duplicated or reordered).
            public var outOfOrder: Int

            enum CodingKeys: String, CodingKey {
                case lost, corrupted
                case outOfOrder = "out_of_order"
            }
        }

        enum CodingKeys: String, CodingKey {
            case mode, connections, seconds, errors, session, messages, integrity
            case firstError = "first_error"
            case handshakesPerSecond = "handshakes_per_second"
            case messagesPerSecond = "messages_per_second"
            case megabytesPerSecond = "megabytes_per_second"
            case latencyMs = "latency_ms"
        }

        /// Encodes every key, with `null` where a mode has no figure.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(mode, forKey: .mode)
            try container.encode(connections, forKey: .connections)
            try container.encode(seconds, forKey: .seconds)
            try container.encode(errors, forKey: .errors)
            try container.encode(firstError, forKey: .firstError)
            try container.encode(handshakesPerSecond, forKey: .handshakesPerSecond)
            try container.encode(messagesPerSecond, forKey: .messagesPerSecond)
            try container.encode(megabytesPerSecond, forKey: .megabytesPerSecond)
            try container.encode(latencyMs, forKey: .latencyMs)
            try container.encode(session, forKey: .session)
            try container.encode(messages, forKey: .messages)
            try container.encode(integrity, forKey: .integrity)
        }
    }

    /// Live counters, for a progress line.
    public final class Progress: Sendable {
        private let counts = NIOLockedValueBox((messages: 0, handshakes: 0, errors: 0))
        /// Creates empty counters.
        public init() {}
        func add(messages: Int = 0, handshakes: Int = 0, errors: Int = 0) {
            counts.withLockedValue {
                $0.messages += messages
                $0.handshakes += handshakes
                $0.errors += errors
            }
        }
        /// Messages, handshakes and errors so far.
        public var snapshot: (messages: Int, handshakes: Int, errors: Int) { counts.withLockedValue { $0 } }
    }

    /// Where to connect, and how.
    public enum Target: Sendable {
        /// mTLS with this client configuration (the normal case).
        case tls(MessageClientConfiguration)
        /// Plain TCP with line framing, nothing authenticated: for measuring the plaintext entrance of a tunnel
        /// client, or the echo backend behind a tunnel, with the same load generator.
        case plaintext(host: String, port: Int)
    }

    /// Where to connect and as whom.
    public let target: Target
    /// How to run.
    public let options: Options

    /// A load generator speaking mTLS.
    public init(client: MessageClientConfiguration, options: Options) {
        self.init(target: .tls(client), options: options)
    }

    /// A load generator for `target`.
    public init(target: Target, options: Options) {
        self.target = target
        self.options = options
    }

    private struct WorkerResult: Sendable {
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        var messages = 0
        var handshakes = 0
        var errors = 0
        var firstError: String?
        var session: SessionInfo?
        var integrity = Report.Integrity(lost: 0, corrupted: 0, outOfOrder: 0)

        mutating func fail(_ error: any Error) {
            errors += 1
            if firstError == nil { firstError = "\(error)" }
        }
    }

    /// Runs the benchmark and reports. `progress` is updated as it goes.
    public func run(progress: Progress = Progress()) async throws -> Report {
        let started = ContinuousClock.now
        let deadline = options.messages == nil ? started + .milliseconds(Int64(options.duration * 1000)) : nil
        let payload = String(repeating: "x", count: options.size)
        let connectOn: @Sendable (any EventLoop) async throws -> any BenchConnection
        switch target {
        case .tls(var configuration):
            configuration.maximumMessageBytes = max(configuration.maximumMessageBytes, options.size)
            // One TLS context for every connection, as a real client would.
            let setup = try TLSClientSetup(configuration)
            connectOn = { [configuration] loop in
                try await MessageClient.connect(configuration, setup: setup, group: loop)
            }
        case .plaintext(let host, let port):
            let limit = max(Framing.defaultMaximumMessageBytes, options.size)
            connectOn = { loop in
                try await PlaintextClient.connect(
                    host: host, port: port, maximumMessageBytes: limit, timeout: .seconds(30),
                    group: loop)
            }
        }
        let results = try await withThrowingTaskGroup(of: WorkerResult.self) { group in
            for worker in 0..<options.connections {
                // Each worker runs on the event loop of its connections: the load generator measures the server,
                // not hops between threads on the client side.
                let loop = MultiThreadedEventLoopGroup.singleton.next()
                let connect: @Sendable () async throws -> any BenchConnection = { try await connectOn(loop) }
                group.addTask(executorPreference: EventLoopTaskExecutor(loop)) { [options] in
                    switch options.mode {
                    case .handshake:
                        return await Self.handshakes(
                            connect, payload: payload, count: options.messages, deadline: deadline, progress: progress)
                    case .echo:
                        return await Self.echo(
                            connect, worker: worker, size: options.size, count: options.messages, deadline: deadline,
                            progress: progress)
                    case .bulk:
                        return await Self.bulk(
                            connect, payload: payload, count: options.messages, deadline: deadline,
                            window: options.window, progress: progress)
                    }
                }
            }
            return try await group.reduce(into: [WorkerResult]()) { $0.append($1) }
        }
        let elapsed = started.duration(to: .now)
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        for result in results { histogram.add(result.histogram) }
        let messages = results.map(\.messages).reduce(0, +)
        let handshakes = results.map(\.handshakes).reduce(0, +)
        let latency: Report.Latency? =
            options.mode == .bulk || histogram.totalCount == 0
            ? nil
            : Report.Latency(
                p50: Double(histogram.valueAtPercentile(50)) / 1000,
                p90: Double(histogram.valueAtPercentile(90)) / 1000,
                p99: Double(histogram.valueAtPercentile(99)) / 1000,
                p999: Double(histogram.valueAtPercentile(99.9)) / 1000,
                max: Double(histogram.max) / 1000)
        var integrity: Report.Integrity?
        if options.mode == .echo {
            integrity = Report.Integrity(lost: 0, corrupted: 0, outOfOrder: 0)
            for result in results {
                integrity?.lost += result.integrity.lost
                integrity?.corrupted += result.integrity.corrupted
                integrity?.outOfOrder += result.integrity.outOfOrder
            }
        }
        var session: SessionInfo?
        if case .tls = target { session = results.compactMap(\.session).first }
        return Report(
            mode: options.mode, connections: options.connections, seconds: seconds,
            errors: results.map(\.errors).reduce(0, +), firstError: results.compactMap(\.firstError).first,
            handshakesPerSecond: options.mode == .handshake ? Double(handshakes) / seconds : nil,
            messagesPerSecond: Double(messages) / seconds,
            megabytesPerSecond: Double(messages * options.size) / seconds / 1e6,
            latencyMs: latency, session: session, messages: messages, integrity: integrity)
    }

    private static func more(_ done: Int, _ count: Int?, _ deadline: ContinuousClock.Instant?) -> Bool {
        if let count { return done < count }
        return ContinuousClock.now < deadline!
    }

    private static func micros(since start: ContinuousClock.Instant) -> UInt64 {
        let duration = start.duration(to: .now)
        return UInt64(
            max(0, duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000))
    }

    private static func handshakes(
        _ connect: @Sendable () async throws -> any BenchConnection, payload: String, count: Int?,
        deadline: ContinuousClock.Instant?, progress: Progress
    ) async -> WorkerResult {
        var result = WorkerResult()
        var done = 0
        while more(done, count, deadline) {
            done += 1
            let start = ContinuousClock.now
            do {
                let client = try await connect()
                if result.session == nil { result.session = client.tlsSession }
                _ = try await client.send(payload)
                await client.close()
                _ = result.histogram.record(micros(since: start))
                result.handshakes += 1
                result.messages += 1
                progress.add(messages: 1, handshakes: 1)
            } catch {
                result.fail(error)
                progress.add(errors: 1)
            }
        }
        return result
    }

    /// Connects once for a persistent-connection mode; a failure is counted and ends the worker.
    private static func persistentConnection(
        _ connect: @Sendable () async throws -> any BenchConnection, result: inout WorkerResult, progress: Progress
    ) async -> (any BenchConnection)? {
        do {
            let client = try await connect()
            result.session = client.tlsSession
            return client
        } catch {
            result.fail(error)
            progress.add(errors: 1)
            return nil
        }
    }

    private static func echo(
        _ connect: @Sendable () async throws -> any BenchConnection, worker: Int, size: Int, count: Int?,
        deadline: ContinuousClock.Instant?, progress: Progress
    ) async -> WorkerResult {
        var result = WorkerResult()
        guard let client = await persistentConnection(connect, result: &result, progress: progress) else {
            return result
        }
        var done = 0
        while more(done, count, deadline) {
            done += 1
            let message = EchoMessage.make(worker: worker, sequence: done, size: size)
            let start = ContinuousClock.now
            let reply: String
            do {
                reply = try await client.send(message)
            } catch {
                result.integrity.lost += 1
                result.fail(error)
                progress.add(errors: 1)
                break
            }
            guard reply == message else {
                switch EchoMessage.check(reply, worker: worker) {
                case .corrupted: result.integrity.corrupted += 1
                case .intact: result.integrity.outOfOrder += 1
                }
                result.fail(
                    SecureChannelError(
                        .connectionClosed,
                        "reply to message \(done) of connection \(worker) differs: \(reply.prefix(40))"))
                progress.add(errors: 1)
                break
            }
            _ = result.histogram.record(micros(since: start))
            result.messages += 1
            progress.add(messages: 1)
        }
        await client.close()
        return result
    }

    private static func bulk(
        _ connect: @Sendable () async throws -> any BenchConnection, payload: String, count: Int?,
        deadline: ContinuousClock.Instant?, window: Int, progress: Progress
    ) async -> WorkerResult {
        var result = WorkerResult()
        guard let client = await persistentConnection(connect, result: &result, progress: progress) else {
            return result
        }
        let message = ByteBuffer(string: payload)
        let failures = NIOLockedValueBox<[String]>([])
        let sent = await withTaskGroup(of: Bool.self) { group -> Int in
            var started = 0
            var completed = 0
            func launch() {
                started += 1
                group.addTask {
                    do {
                        _ = try await client.send(message)  // the reply is read and discarded
                        progress.add(messages: 1)
                        return true
                    } catch {
                        failures.withLockedValue { $0.append("\(error)") }
                        progress.add(errors: 1)
                        return false
                    }
                }
            }
            while started < window && more(started, count, deadline) { launch() }
            for await ok in group {
                if ok { completed += 1 }
                if ok && more(started, count, deadline) { launch() }
            }
            return completed
        }
        result.messages = sent
        for failure in failures.withLockedValue({ $0 }) { result.fail(SecureChannelError(.connectionClosed, failure)) }
        await client.close()
        return result
    }
}

/// The load generator's echo messages: `w<connection> n<sequence> <filler> <checksum>`, so that a reply that is
/// corrupted, duplicated or reordered is told apart from the right one.
package enum EchoMessage {
    package enum Check { case intact, corrupted }

    /// A message of at least `size` bytes (longer when the header does not fit), no newline.
    package static func make(worker: Int, sequence: Int, size: Int) -> String {
        let header = "w\(worker) n\(sequence) "
        let fillerCount = max(0, size - header.utf8.count - 9)
        let letters = Array("abcdefghijklmnopqrstuvwxyz")
        let filler = String((0..<fillerCount).map { letters[($0 + sequence) % letters.count] })
        let body = header + filler
        return body + " " + checksum(body)
    }

    /// Whether `reply` is a well-formed message of `worker` with a matching checksum.
    package static func check(_ reply: String, worker: Int) -> Check {
        guard let space = reply.lastIndex(of: " ") else { return .corrupted }
        let body = String(reply[..<space])
        guard checksum(body) == reply[reply.index(after: space)...], body.hasPrefix("w\(worker) n") else {
            return .corrupted
        }
        return .intact
    }

    /// FNV-1a, 32 bits, as 8 hex digits: an integrity check against accidents, not an adversary.
    static func checksum(_ text: String) -> String {
        var hash: UInt32 = 0x811C_9DC5
        for byte in text.utf8 {
            hash = (hash ^ UInt32(byte)) &* 0x0100_0193
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 8 - hex.count) + hex
    }
}
