import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A forward-auth backend in the test process (HTTP/1.1 with keep-alive on 127.0.0.1, an ephemeral port): it
/// answers each request with what `reply` says, can hold the answer (or only its body) back, and counts what
/// it saw, measured on its own side: calls, calls in flight now and at most.
final class ForwardAuthBackend: Sendable {
    /// How to answer one request.
    struct Reply: Sendable {
        var status: HTTPResponseStatus = .ok
        var headers: [(String, String)] = []
        /// The whole answer waits this long.
        var delay: TimeAmount = .zero
        /// The head goes out after `delay`, the body this much later (a backend that stalls mid-answer).
        var bodyDelay: TimeAmount = .zero
        var body: String = ""
    }

    /// One request as received.
    struct Seen: Sendable {
        var uri: String
        var headers: HTTPHeaders
    }

    struct Counters: Sendable {
        var calls = 0
        var inFlight = 0
        var maxInFlight = 0
        var connections = 0
        /// The first 2,000 requests (enough for any assertion, bounded for the storm tests).
        var seen: [Seen] = []
    }

    let port: Int
    var url: String { "http://127.0.0.1:\(self.port)/check" }
    private let channel: any Channel
    private let counters: NIOLockedValueBox<Counters>

    var snapshot: Counters { self.counters.withLockedValue { $0 } }

    static func start(
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        reply: @escaping @Sendable (Seen) -> Reply
    ) async throws -> ForwardAuthBackend {
        let counters = NIOLockedValueBox(Counters())
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    counters.withLockedValue { $0.connections += 1 }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(counters: counters, reply: reply))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        return ForwardAuthBackend(port: channel.localAddress!.port!, channel: channel, counters: counters)
    }

    private init(port: Int, channel: any Channel, counters: NIOLockedValueBox<Counters>) {
        self.port = port
        self.channel = channel
        self.counters = counters
    }

    /// Stops listening (open connections are closed by their clients or by the group's shutdown).
    func stop() async throws {
        try await self.channel.close()
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        private let counters: NIOLockedValueBox<Counters>
        private let reply: @Sendable (Seen) -> Reply
        private var head: HTTPRequestHead?
        /// A request whose answer is not written yet (counted in flight until it is, or the connection closes).
        private var pending = false

        init(counters: NIOLockedValueBox<Counters>, reply: @escaping @Sendable (Seen) -> Reply) {
            self.counters = counters
            self.reply = reply
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch self.unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
            case .body:
                break
            case .end:
                guard let head = self.head else { return }
                let seen = Seen(uri: head.uri, headers: head.headers)
                self.counters.withLockedValue {
                    $0.calls += 1
                    $0.inFlight += 1
                    $0.maxInFlight = max($0.maxInFlight, $0.inFlight)
                    if $0.seen.count < 2_000 { $0.seen.append(seen) }
                }
                self.pending = true
                let reply = self.reply(seen)
                let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                context.eventLoop.scheduleTask(in: reply.delay) {
                    let (handler, context) = loopBound.value
                    handler.respond(reply, keepAlive: head.isKeepAlive, context: context)
                }
            }
        }

        private func respond(_ reply: Reply, keepAlive: Bool, context: ChannelHandlerContext) {
            guard self.pending, context.channel.isActive else { return }
            var headers = HTTPHeaders(reply.headers)
            headers.replaceOrAdd(name: "Content-Length", value: String(reply.body.utf8.count))
            if !keepAlive { headers.replaceOrAdd(name: "Connection", value: "close") }
            context.writeAndFlush(
                self.wrapOutboundOut(
                    .head(HTTPResponseHead(version: .http1_1, status: reply.status, headers: headers))
                ),
                promise: nil
            )
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: reply.bodyDelay) {
                let (handler, context) = loopBound.value
                guard handler.pending, context.channel.isActive else { return }
                var buffer = context.channel.allocator.buffer(capacity: reply.body.utf8.count)
                buffer.writeString(reply.body)
                context.write(handler.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
                handler.finish()
                context.writeAndFlush(handler.wrapOutboundOut(.end(nil)), promise: nil)
                if !keepAlive { context.close(promise: nil) }
            }
        }

        private func finish() {
            guard self.pending else { return }
            self.pending = false
            self.counters.withLockedValue { $0.inFlight -= 1 }
        }

        func channelInactive(context: ChannelHandlerContext) {
            self.finish()
            context.fireChannelInactive()
        }
    }
}
