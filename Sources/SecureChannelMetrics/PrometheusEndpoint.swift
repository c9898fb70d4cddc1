import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import SecureChannel
import ServiceLifecycle

/// A small plaintext HTTP server for operators: `GET /metrics` (Prometheus text format) and `GET /healthz`
/// (`200 ok` while every checked service is ready, `503` while starting or draining). Nothing else: any other path
/// is 404, any other method 405. It carries no secrets, but bind it to loopback or a management network.
///
/// Run it as a ServiceLifecycle `Service`, listed *before* the servers it reports on, so that it stops last and
/// `/healthz` says 503 for the whole drain.
public final class PrometheusEndpoint: Service, Sendable {
    /// The registry whose metrics `/metrics` shows.
    public let registry: PrometheusCollectorRegistry
    /// A metrics factory writing into ``registry``; pass it to servers' configurations.
    public let factory: PrometheusMetricsFactory
    private let host: String
    private let port: Int
    private let ready = NIOLockedValueBox<@Sendable () -> Bool>({ false })
    private let logger: Logger
    private let group: any EventLoopGroup
    private let bound: EventLoopPromise<SocketAddress>

    /// Creates the endpoint for `host:port` (port 0 picks a free port). `/healthz` answers 503 until
    /// ``reportReadiness(_:)`` gives it something to ask.
    public init(
        host: String, port: Int, logger: Logger, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // Handshakes take milliseconds: finer buckets than the default 5 ms to 10 s.
        factory.durationHistogramBuckets[ListenerMetrics.handshakeLabel] = [
            .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
            .milliseconds(25),
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5),
            .seconds(5), .seconds(10),
        ]
        self.factory = factory
        self.host = host
        self.port = port
        self.logger = logger
        self.group = group
        bound = group.any().makePromise(of: SocketAddress.self)
    }

    /// Sets what `/healthz` asks: typically whether every server is listening and not draining.
    public func reportReadiness(_ ready: @escaping @Sendable () -> Bool) {
        self.ready.withLockedValue { $0 = ready }
    }

    /// The address, once bound.
    public func listeningAddress() async throws -> SocketAddress {
        try await bound.futureResult.get()
    }

    /// Serves until graceful shutdown or cancellation.
    public func run() async throws {
        let registry = self.registry
        let box = self.ready
        let ready: @Sendable () -> Bool = { box.withLockedValue { $0 }() }
        let channel: any Channel
        do {
            channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        // A scraper that goes quiet for 30 s is closed: idle connections cannot pile up.
                        try channel.pipeline.syncOperations.addHandler(IdleStateHandler(allTimeout: .seconds(30)))
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        try channel.pipeline.syncOperations.addHandler(
                            MetricsHTTPHandler(registry: registry, ready: ready))
                    }
                }
                .bind(host: host, port: port).get()
        } catch {
            let failure = SecureChannelError(
                .configuration,
                "cannot listen for metrics on \(SocketEndpoint.format(host: host, port: port)): \(SocketErrorText.bind(error))"
            )
            bound.fail(failure)
            throw failure
        }
        if let address = channel.localAddress {
            if let ip = address.ipAddress, !(ip.hasPrefix("127.") || ip == "::1") {
                logger.warning(
                    "the metrics endpoint on \(host):\(port) is reachable from other machines and has no authentication; bind it to loopback or a management network",
                    metadata: ["event": "metrics-exposed"])
            }
            bound.succeed(address)
        }
        try await withTaskCancellationOrGracefulShutdownHandler {
            try await channel.closeFuture.get()
        } onCancelOrGracefulShutdown: {
            channel.close(promise: nil)
        }
    }
}

/// Answers one HTTP request at a time on a metrics connection.
final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let registry: PrometheusCollectorRegistry
    private let ready: @Sendable () -> Bool
    private var request: HTTPRequestHead?

    init(registry: PrometheusCollectorRegistry, ready: @escaping @Sendable () -> Bool) {
        self.registry = registry
        self.ready = ready
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            request = head
        case .body:
            break
        case .end:
            guard let head = request else { return }
            request = nil
            let (status, type, body) = answer(head)
            var headers = HTTPHeaders([("Content-Type", type), ("Content-Length", String(body.count))])
            if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
            context.write(
                wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))),
                promise: nil)
            if head.method != .HEAD {
                context.write(
                    wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
            }
            let keepAlive = head.isKeepAlive
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                if !keepAlive { context.close(promise: nil) }
            }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func answer(_ head: HTTPRequestHead) -> (HTTPResponseStatus, String, [UInt8]) {
        guard head.method == .GET || head.method == .HEAD else {
            return (.methodNotAllowed, "text/plain", Array("only GET\n".utf8))
        }
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        switch path {
        case "/metrics":
            return (.ok, "text/plain; version=0.0.4; charset=utf-8", registry.emitToBuffer())
        case "/healthz":
            return ready()
                ? (.ok, "text/plain", Array("ok\n".utf8))
                : (.serviceUnavailable, "text/plain", Array("not ready\n".utf8))
        default:
            return (.notFound, "text/plain", Array("not found: try /metrics or /healthz\n".utf8))
        }
    }
}
