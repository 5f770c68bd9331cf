import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import NIOSSL
import NIOTLS

/// How the bench reaches the server: TCP (from one of several source addresses), TLS with ALPN for
/// https, then either one HTTP/1.1 client per connection or up to K HTTP/2 streams per connection
/// (h2c with prior knowledge for http, ALPN `h2` for https).
struct BenchConnector: Sendable {
    /// The receive window of each HTTP/2 stream, so that flow control never limits the bench.
    static let streamWindow = 1 << 20
    /// The connection-level window the bench keeps topping up.
    static let connectionWindow = 64 << 20

    let target: BenchURL
    let http2: Bool
    let tls: NIOSSLContext?
    let sourceAddresses: Int
    /// For the TCP connect, and again for the TLS handshake after it.
    let connectTimeout: TimeAmount
    private let connectTimeoutSeconds: Double
    let mode: BenchClientMode
    private let http1Request: BenchHTTP1Request
    private let http2Request: HPACKHeaders

    init(options: BenchOptions, target: BenchURL) throws {
        self.target = target
        self.http2 = options.http2
        self.mode = options.mode
        self.sourceAddresses = options.sourceAddresses
        self.connectTimeoutSeconds = options.connectTimeout
        self.connectTimeout = .nanoseconds(Int64(options.connectTimeout * 1e9))
        self.tls = target.isTLS ? try Self.tlsContext(options) : nil
        var fields = [("Accept", "text/event-stream"), ("Cache-Control", "no-cache")]
        if options.gzip { fields.append(("Accept-Encoding", "gzip")) }
        fields += options.headers.map { ($0.name, $0.value) }
        let head = fields.map { "\($0.0): \($0.1)\r\n" }.joined()
        self.http1Request = BenchHTTP1Request(
            head: "GET \(target.target) HTTP/1.1\r\nHost: \(target.hostHeader)\r\n\(head)"
        )
        self.http2Request = HPACKHeaders(
            [
                (":method", "GET"), (":scheme", target.scheme), (":path", target.target),
                (":authority", target.hostHeader),
            ]
                + fields.map { ($0.0.lowercased(), $0.1) }
        )
    }

    private static func tlsContext(_ options: BenchOptions) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.applicationProtocols = options.http2 ? ["h2"] : ["http/1.1"]
        if let file = options.caCertificateFile {
            do {
                configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(file))
            } catch {
                throw BenchError.usage("cannot read --cacert \(file): \(error)")
            }
        }
        if options.insecure { configuration.certificateVerification = .none }
        return try NIOSSLContext(configuration: configuration)
    }

    /// Opens connection number `index` on `loop` for `clients` clients (1 for HTTP/1.1) and sends their
    /// requests. Succeeds with the connection; HTTP/2 streams that fail to open are counted in the tally.
    /// `client`: the reconnecting client (HTTP/1.1) this connection is an attempt of.
    func connect(
        index: Int,
        clients: Int,
        loop: EventLoop,
        tally: BenchLoopTally,
        client: BenchReconnectingClient? = nil
    ) -> EventLoopFuture<Channel> {
        let ready = loop.makePromise(of: NIOHTTP2Handler.StreamMultiplexer?.self)
        var bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(self.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    if let tls = self.tls {
                        let serverName = self.target.serverName
                        try pipeline.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverName))
                        let timeout = BenchError.handshakeTimeout(seconds: self.connectTimeoutSeconds)
                        try pipeline.addHandler(
                            TLSReadiness(ready: ready, timeout: self.connectTimeout, timeoutError: timeout) {
                                negotiated in
                                try self.configureApplication(
                                    pipeline,
                                    negotiated: negotiated,
                                    tally: tally,
                                    client: client
                                )
                            }
                        )
                    } else {
                        ready.succeed(
                            try self.configureApplication(pipeline, negotiated: nil, tally: tally, client: client)
                        )
                    }
                }
            }
        if self.sourceAddresses > 1,
            let source = try? SocketAddress(ipAddress: "127.0.0.\(1 + index % self.sourceAddresses)", port: 0)
        {
            bootstrap = bootstrap.bind(to: source)
        }
        // An IP address needs no resolver: connecting by name sends every connect through getaddrinfo on
        // Dispatch's threads, which a ramp of thousands of connects queues behind.
        let connected: EventLoopFuture<Channel>
        if let address = try? SocketAddress(ipAddress: self.target.host, port: self.target.port) {
            connected = bootstrap.connect(to: address)
        } else {
            connected = bootstrap.connect(host: self.target.host, port: self.target.port)
        }
        connected.whenFailure { ready.fail($0) }
        return connected.flatMap { channel in
            ready.futureResult.flatMap { multiplexer in
                guard let multiplexer else { return loop.makeSucceededVoidFuture() }
                return self.openStreams(clients, on: multiplexer, loop: loop, tally: tally)
            }.flatMapError { error in
                channel.close(promise: nil)
                return loop.makeFailedFuture(error)
            }.map { channel }
        }
    }

    /// The HTTP/1.1 client handler, or the HTTP/2 connection handlers (their multiplexer is returned).
    private func configureApplication(
        _ pipeline: ChannelPipeline.SynchronousOperations,
        negotiated: String?,
        tally: BenchLoopTally,
        client: BenchReconnectingClient?
    ) throws -> NIOHTTP2Handler.StreamMultiplexer? {
        guard self.http2 else {
            try pipeline.addHandler(
                BenchHTTP1Handler(request: self.http1Request, loop: tally, mode: self.mode, client: client)
            )
            return nil
        }
        if self.tls != nil && negotiated != "h2" {
            throw BenchError.notHTTP2(url: self.target.description, selected: negotiated)
        }
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        connection.initialSettings = [
            HTTP2Setting(parameter: .enablePush, value: 0),
            HTTP2Setting(parameter: .maxHeaderListSize, value: 64 * 1024),
            HTTP2Setting(parameter: .initialWindowSize, value: Self.streamWindow),
        ]
        connection.targetWindowSize = Self.connectionWindow
        var stream = NIOHTTP2Handler.StreamConfiguration()
        stream.targetWindowSize = Self.streamWindow
        return try pipeline.configureHTTP2Pipeline(
            mode: .client,
            connectionConfiguration: connection,
            streamConfiguration: stream
        ) { pushed in
            pushed.close()  // push is off; nothing arrives here
        }
    }

    private func openStreams(
        _ count: Int,
        on multiplexer: NIOHTTP2Handler.StreamMultiplexer,
        loop: EventLoop,
        tally: BenchLoopTally
    ) -> EventLoopFuture<Void> {
        let opened = (0..<count).map { _ in
            let promise = loop.makePromise(of: Channel.self)
            multiplexer.createStreamChannel(promise: promise) { stream in
                stream.eventLoop.makeCompletedFuture {
                    try stream.pipeline.syncOperations.addHandler(
                        BenchHTTP2StreamHandler(request: self.http2Request, loop: tally, mode: self.mode)
                    )
                }
            }
            return promise.futureResult.map { _ in }.recover { _ in tally.tally.streamOpenErrors += 1 }
        }
        return EventLoopFuture.andAllComplete(opened, on: loop)
    }
}

/// Waits for the TLS handshake of a bench connection: then sets up HTTP/1.1 or HTTP/2 by the protocol
/// ALPN selected and steps out of the pipeline; a handshake error, a close, or no handshake within
/// `timeout` of the TCP connect fails the connection's setup with the reason (a certificate that is not
/// trusted, a server that will not speak h2, a server that never answers) and closes it.
private final class TLSReadiness: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let ready: EventLoopPromise<NIOHTTP2Handler.StreamMultiplexer?>
    private let configure: (String?) throws -> NIOHTTP2Handler.StreamMultiplexer?
    private let timeout: TimeAmount
    private let timeoutError: BenchError
    private var deadline: Scheduled<Void>?
    private var done = false

    init(
        ready: EventLoopPromise<NIOHTTP2Handler.StreamMultiplexer?>,
        timeout: TimeAmount,
        timeoutError: BenchError,
        configure: @escaping (String?) throws -> NIOHTTP2Handler.StreamMultiplexer?
    ) {
        self.ready = ready
        self.timeout = timeout
        self.timeoutError = timeoutError
        self.configure = configure
    }

    /// The handshake starts with the TCP connection (this handler is in the pipeline before the connect);
    /// from then on it has `timeout`.
    func channelActive(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        self.deadline = context.eventLoop.scheduleTask(in: self.timeout) {
            let (handler, context) = loopBound.value
            handler.finish(failing: handler.timeoutError)
            context.close(promise: nil)
        }
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.deadline?.cancel()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case .handshakeCompleted(let negotiated) = event as? TLSUserEvent, !self.done else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        self.done = true
        self.deadline?.cancel()
        do {
            let multiplexer = try self.configure(negotiated)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            self.ready.succeed(multiplexer)
        } catch {
            self.ready.fail(error)
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        self.finish(failing: error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.finish(failing: BenchError.closedDuringHandshake)
        context.fireChannelInactive()
    }

    private func finish(failing error: Error) {
        guard !self.done else { return }
        self.done = true
        self.deadline?.cancel()
        self.ready.fail(error)
    }
}
