import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SecureChannel
import SecureChannelPKI
import ServiceLifecycle
import TestSupport
import Testing

@testable import SecureChannelTunnel

/// A plaintext TCP server on 127.0.0.1 for tests: echoes (and forwards a half-close), or records what it gets.
final class PlainTarget: @unchecked Sendable {
    enum Mode { case echo, record, silent, reset }
    let channel: any Channel
    let received = NIOLockedValueBox<[UInt8]>([])
    var port: Int { channel.localAddress!.port! }

    init(_ mode: Mode) async throws {
        let received = self.received
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.autoRead, value: mode != .silent)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(TargetHandler(mode: mode, received: received))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    func stop() async { try? await channel.close() }

    final class TargetHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let mode: Mode
        let received: NIOLockedValueBox<[UInt8]>
        /// NIO turns an output close into a full close (dropping queued bytes) once the input is shut, so the
        /// echo closes only after its last write completed.
        var lastWrite: EventLoopFuture<Void>?
        init(mode: Mode, received: NIOLockedValueBox<[UInt8]>) {
            self.mode = mode
            self.received = received
        }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            switch mode {
            case .echo:
                let promise = context.eventLoop.makePromise(of: Void.self)
                context.write(wrapOutboundOut(buffer), promise: promise)
                lastWrite = promise.futureResult
            case .record: received.withLockedValue { $0 += buffer.readableBytesView }
            case .silent: break
            case .reset:
                // Abort: SO_LINGER 0 makes close send RST instead of FIN.
                let channel = context.channel
                (channel as? any SocketOptionProvider)?.setSoLinger(linger(l_onoff: 1, l_linger: 0))
                    .whenComplete { _ in channel.close(promise: nil) }
            }
        }
        func channelReadComplete(context: ChannelHandlerContext) { context.flush() }
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case ChannelEvent.inputClosed = event {
                context.flush()
                let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
                (lastWrite ?? context.eventLoop.makeSucceededVoidFuture()).whenComplete { _ in
                    loopBound.value.close(mode: .output, promise: nil)
                }
            }
        }
        func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    }
}

/// A tunnel server (to `targetPort`) and a tunnel client in front of it, both in-process.
struct TunnelPair {
    let pki: TestPKI
    let server: TunnelServer
    let client: TunnelClient
    let services: ServiceGroup
    let task: Task<Void, any Error>
    let serverPort: Int
    let clientPort: Int

    static func start(
        _ pki: TestPKI, targetPort: Int, clientName: String = "Chris", rules: AccessRules = .anyClient,
        proxyProtocol: Bool = false, crl: Bool = false,
        configureServer: (inout TunnelServerConfiguration) -> Void = { _ in },
        configureClient: (inout TunnelClientConfiguration) -> Void = { _ in }
    ) async throws -> TunnelPair {
        var logger = Logger(label: "test.tunnel")
        logger.logLevel = .critical
        var serverConfiguration = TunnelServerConfiguration(
            host: "127.0.0.1", port: 0, target: .tcp(host: "127.0.0.1", port: targetPort),
            files: TLSMaterialFiles(
                certificate: pki.dir.file("Jill.crt"), key: pki.dir.file("Jill.key"), ca: pki.dir.file("ca.crt"),
                crls: crl ? [pki.dir.file("crl.pem")] : []),
            rules: rules, proxyProtocol: proxyProtocol, connectTimeout: .seconds(2))
        serverConfiguration.shutdownGracePeriod = .milliseconds(200)
        configureServer(&serverConfiguration)
        let server = try TunnelServer(configuration: serverConfiguration, logger: logger)
        let serverTask = ServiceGroup(configuration: .init(services: [.init(service: server)], logger: logger))
        let runServer = Task { try await serverTask.run() }
        let serverPort = try #require(try await server.listeningAddress().port)
        var clientConfiguration = TunnelClientConfiguration(
            listen: .tcp(host: "127.0.0.1", port: 0), targetHost: "127.0.0.1", targetPort: serverPort,
            serverName: "localhost",
            files: TLSMaterialFiles(
                certificate: pki.dir.file("\(clientName).crt"), key: pki.dir.file("\(clientName).key"),
                ca: pki.dir.file("ca.crt")))
        clientConfiguration.shutdownGracePeriod = .milliseconds(200)
        configureClient(&clientConfiguration)
        let client = try TunnelClient(configuration: clientConfiguration, logger: logger)
        let services = ServiceGroup(
            configuration: .init(
                services: [.init(service: client), .init(service: FileWatchService(watching: [server, client]))],
                logger: logger))
        let task = Task {
            try await services.run()
            await serverTask.triggerGracefulShutdown()
            try await runServer.value
        }
        let clientPort = try #require(try await client.listeningAddress().port)
        return TunnelPair(
            pki: pki, server: server, client: client, services: services, task: task, serverPort: serverPort,
            clientPort: clientPort)
    }

    func stop() async throws {
        await services.triggerGracefulShutdown()
        try await task.value
    }
}

/// A plaintext client connection for tests.
enum PlainClient {
    /// Sends `message` and counts the bytes that come back until the connection ends. A reset also ends it: a
    /// socket closed with our bytes unread answers with RST. Used where nothing must come back.
    static func sendAndCountReply(port: Int, _ message: String) async throws -> Int {
        let connection = try await connect(port: port)
        return try await connection.executeThenClose { inbound, outbound in
            try? await outbound.write(ByteBuffer(string: message))
            var bytes = 0
            do {
                for try await buffer in inbound { bytes += buffer.readableBytes }
            } catch {
                // reset: nothing more came back
            }
            return bytes
        }
    }

    static func connect(port: Int) async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                        wrappingChannelSynchronously: channel,
                        configuration: .init(isOutboundHalfClosureEnabled: true))
                }
            }
    }
}
