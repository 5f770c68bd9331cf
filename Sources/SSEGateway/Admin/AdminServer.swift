import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// The admin listener: `/healthz`, `/readyz`, `/metrics` (Prometheus text), `/api/feeds` (JSON), and
/// for a person `/` (the status page) fed by `/api/status/stream` (SSE).
enum AdminServer {
    static func bind(
        address: HostPort,
        group: EventLoopGroup,
        metrics: GatewayMetrics,
        logger: Logger
    ) async throws -> Channel {
        let rates = AdminRates(metrics: metrics)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                do {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(AdminHandler(metrics: metrics, rates: rates))
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
            .bind(host: address.host, port: address.port)
            .get()
        rates.start(on: channel.eventLoop)
        channel.closeFuture.whenComplete { _ in rates.stop() }
        return channel
    }
}

final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let metrics: GatewayMetrics
    private let rates: AdminRates
    private var request: HTTPRequestHead?
    /// The open `/api/status/stream` of this connection, if any (it ends with the connection).
    private var stream: AdminStream?

    init(metrics: GatewayMetrics, rates: AdminRates) {
        self.metrics = metrics
        self.rates = rates
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
        let (path, query) = RequestRouter.split(head.uri)
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
            let stream = AdminStream(metrics: self.metrics, interval: AdminStream.interval(query: query))
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
            self.metrics.render(on: context.eventLoop).whenComplete { result in
                switch result {
                case .success(let text):
                    self.send(.ok, text, type: "text/plain; version=0.0.4; charset=utf-8", head: head, context: context)
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
        case "/api/feeds":
            self.metrics.snapshot(on: context.eventLoop).whenComplete { result in
                switch result {
                case .success(let snapshot):
                    self.send(
                        .ok,
                        FeedsJSON.render(snapshot, rates: self.rates.latest),
                        type: "application/json",
                        head: head,
                        context: context
                    )
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
        default:
            self.send(.notFound, "not found\n", type: "text/plain; charset=utf-8", head: head, context: context)
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
            done.whenComplete { _ in context.close(promise: nil) }
        }
    }
}

/// `/api/feeds`: one object per open feed (never an upstream credential: URLs are printed without
/// user info and configured headers are not shown). Rates come from the admin listener's sampler
/// (the last interval, about a second; null until it has two samples).
enum FeedsJSON {
    static func render(_ snapshot: GatewayMetrics.Snapshot, rates: StatusSample = StatusSample()) -> String {
        var items: [String] = []
        for feed in snapshot.feeds where !feed.retired {
            let delivery = snapshot.delivery[feed.definition]
            let limits = snapshot.replayLimits[feed.path]
            let fields: [(String, String)] = [
                ("path", JSONText.string(feed.path)),
                ("name", JSONText.string(feed.definition)),
                ("upstream_state", JSONText.string(feed.upstreamState.rawValue)),
                ("upstream_url", JSONText.string(feed.upstreamURL)),
                ("last_event_id", JSONText.string(feed.lastEventID)),
                ("replay_events", String(feed.replayEvents)),
                ("replay_bytes", String(feed.replayBytes)),
                ("clients", String(snapshot.clientsPerFeed[feed.path, default: 0])),
                ("events_in", String(feed.eventsIn)),
                ("replays", String(feed.replaysServed)),
                ("replay_gaps", String(feed.replayGaps)),
                ("upstream_reconnects", String(feed.upstreamReconnects)),
                ("definition_deliveries", String(delivery?.deliveries ?? 0)),
                ("definition_evictions", String((delivery?.evictionsMaxQueue ?? 0) + (delivery?.evictionsMaxLag ?? 0))),
                ("replay_max_events", limits.map { String($0.maxEvents) } ?? "null"),
                ("replay_max_bytes", limits.map { String($0.maxBytes) } ?? "null"),
                ("upstream_failures", String(feed.upstreamFailures)),
                ("events_per_s", StatusJSON.number(rates.eventsPerSecond[feed.path])),
                (
                    "definition_deliveries_per_s",
                    StatusJSON.number(rates.deliveriesPerSecond[feed.definition] ?? rates.interval.map { _ in 0 })
                ),
                (
                    "definition_bytes_per_s",
                    StatusJSON.number(rates.bytesPerSecond[feed.definition] ?? rates.interval.map { _ in 0 })
                ),
                (
                    "definition_evictions_by_reason",
                    StatusJSON.evictions(delivery?.evictionsMaxQueue ?? 0, delivery?.evictionsMaxLag ?? 0)
                ),
            ]
            items.append("{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}")
        }
        return
            "{\"connected_clients\":\(snapshot.connectedClients),\"rate_interval_s\":\(StatusJSON.number(rates.interval)),\"feeds\":["
            + items.joined(separator: ",") + "]}\n"
    }
}
