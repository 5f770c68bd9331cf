import NIOCore
import NIOHTTP1

/// One admin connection: answers each request from `GatewayMetrics` (reads only) and may hold one status
/// stream. Everything runs on the connection's loop; the metrics futures complete there too.
final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let metrics: GatewayMetrics
    private let rates: AdminRates
    private let access: AdminAccess
    private var request: HTTPRequestHead?
    /// The open `/api/status/stream` of this connection, if any (it ends with the connection).
    private var stream: AdminStream?

    init(metrics: GatewayMetrics, rates: AdminRates, access: AdminAccess) {
        self.metrics = metrics
        self.rates = rates
        self.access = access
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.stream?.stop()
        self.stream = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.stream?.stop()
        self.stream = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.request = head
        case .body:
            break
        case .end:
            guard let head = self.request, self.stream == nil else { return }
            self.request = nil
            self.handle(head, context: context)
        }
    }

    private func handle(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let (path, query) = RequestRouter.split(head.uri)
        // Read before the check, so a token replaced between the two ends the stream rather than outliving it.
        let generation = self.access.generation
        // Before anything else, so that without the token not even the set of paths (404 or not) shows.
        guard self.access.allows(path: path, headers: head.headers) else {
            return self.send(
                .unauthorized,
                "{\"error\":\"unauthorized\"}\n",
                type: "application/json",
                extra: AdminAccess.challenge(path: path),
                head: head,
                context: context
            )
        }
        guard head.method == .GET || head.method == .HEAD else {
            return self.send(
                .methodNotAllowed,
                "method not allowed\n",
                type: "text/plain; charset=utf-8",
                extra: [("Allow", "GET, HEAD")],
                head: head,
                context: context
            )
        }
        switch path {
        case "/", "/index.html":
            self.send(
                .ok,
                StatusPage.html,
                type: "text/html; charset=utf-8",
                extra: StatusPage.headers,
                head: head,
                context: context
            )
        case "/api/status/stream":
            guard head.method == .GET else {
                return self.send(.ok, "", type: "text/event-stream; charset=utf-8", head: head, context: context)
            }
            let stream = AdminStream(
                metrics: self.metrics,
                interval: AdminStream.interval(query: query),
                access: self.access,
                admittedGeneration: generation
            )
            self.stream = stream
            stream.start(context: context, version: head.version)
        case "/healthz":
            self.send(.ok, "ok\n", type: "text/plain; charset=utf-8", head: head, context: context)
        case "/readyz":
            let ready = self.metrics.ready.load(ordering: .relaxed)
            self.send(
                ready ? .ok : .serviceUnavailable,
                ready ? "ready\n" : "not ready\n",
                type: "text/plain; charset=utf-8",
                head: head,
                context: context
            )
        case "/metrics":
            self.answer(
                self.metrics.render(on: context.eventLoop),
                type: "text/plain; version=0.0.4; charset=utf-8",
                head: head,
                context: context
            ) { $0 }
        case "/api/feeds":
            self.answer(
                self.metrics.snapshot(on: context.eventLoop),
                type: "application/json",
                head: head,
                context: context
            ) { FeedsJSON.render($0, rates: self.rates.latest) }
        default:
            self.send(.notFound, "not found\n", type: "text/plain; charset=utf-8", head: head, context: context)
        }
    }

    /// Sends what `render` makes of the future's value once it completes (on this connection's loop),
    /// or a 500 naming its error.
    private func answer<Value>(
        _ future: EventLoopFuture<Value>,
        type: String,
        head: HTTPRequestHead,
        context: ChannelHandlerContext,
        render: @escaping (Value) -> String
    ) {
        future.assumeIsolated().whenComplete { result in
            switch result {
            case .success(let value):
                self.send(.ok, render(value), type: type, head: head, context: context)
            case .failure(let error):
                self.send(
                    .internalServerError,
                    "\(error)\n",
                    type: "text/plain; charset=utf-8",
                    head: head,
                    context: context
                )
            }
        }
    }

    private func send(
        _ status: HTTPResponseStatus,
        _ body: String,
        type: String,
        extra: [(String, String)] = [],
        head: HTTPRequestHead,
        context: ChannelHandlerContext
    ) {
        var headers = HTTPHeaders(
            [("Content-Type", type), ("Content-Length", String(body.utf8.count)), ("Cache-Control", "no-store")] + extra
        )
        if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
        context.write(
            self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))),
            promise: nil
        )
        if head.method != .HEAD {
            context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
        }
        let done = context.writeAndFlush(self.wrapOutboundOut(.end(nil)))
        if !head.isKeepAlive {
            done.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }
}
