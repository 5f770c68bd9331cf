import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// The admin listener: `/healthz`, `/readyz`, `/metrics` (Prometheus text) and `/api/feeds` (JSON).
enum AdminServer {
    static func bind(address: HostPort, group: EventLoopGroup, metrics: GatewayMetrics, logger: Logger) async throws -> Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                do {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(AdminHandler(metrics: metrics))
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
            .bind(host: address.host, port: address.port)
            .get()
    }
}

final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let metrics: GatewayMetrics
    private var request: HTTPRequestHead?

    init(metrics: GatewayMetrics) {
        self.metrics = metrics
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.request = head
        case .body:
            break
        case .end:
            guard let head = self.request else { return }
            self.request = nil
            self.handle(head, context: context)
        }
    }

    private func handle(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        guard head.method == .GET || head.method == .HEAD else {
            return self.send(.methodNotAllowed, "method not allowed\n", type: "text/plain; charset=utf-8", extra: [("Allow", "GET, HEAD")], head: head, context: context)
        }
        let path = RequestRouter.split(head.uri).path
        switch path {
        case "/healthz":
            self.send(.ok, "ok\n", type: "text/plain; charset=utf-8", head: head, context: context)
        case "/readyz":
            let ready = self.metrics.ready.load(ordering: .relaxed)
            self.send(ready ? .ok : .serviceUnavailable, ready ? "ready\n" : "not ready\n", type: "text/plain; charset=utf-8", head: head, context: context)
        case "/metrics":
            self.metrics.render(on: context.eventLoop).whenComplete { result in
                switch result {
                case .success(let text):
                    self.send(.ok, text, type: "text/plain; version=0.0.4; charset=utf-8", head: head, context: context)
                case .failure(let error):
                    self.send(.internalServerError, "\(error)\n", type: "text/plain; charset=utf-8", head: head, context: context)
                }
            }
        case "/api/feeds":
            self.metrics.snapshot(on: context.eventLoop).whenComplete { result in
                switch result {
                case .success(let snapshot):
                    self.send(.ok, FeedsJSON.render(snapshot), type: "application/json", head: head, context: context)
                case .failure(let error):
                    self.send(.internalServerError, "\(error)\n", type: "text/plain; charset=utf-8", head: head, context: context)
                }
            }
        default:
            self.send(.notFound, "not found\n", type: "text/plain; charset=utf-8", head: head, context: context)
        }
    }

    private func send(_ status: HTTPResponseStatus, _ body: String, type: String, extra: [(String, String)] = [], head: HTTPRequestHead, context: ChannelHandlerContext) {
        var headers = HTTPHeaders([("Content-Type", type), ("Content-Length", String(body.utf8.count)), ("Cache-Control", "no-store")] + extra)
        if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
        context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
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
/// user info and configured headers are not shown).
enum FeedsJSON {
    static func render(_ snapshot: GatewayMetrics.Snapshot) -> String {
        var items: [String] = []
        for feed in snapshot.feeds where !feed.retired {
            let delivery = snapshot.delivery[feed.definition]
            let fields: [(String, String)] = [
                ("path", StreamPrelude.jsonString(feed.path)),
                ("name", StreamPrelude.jsonString(feed.definition)),
                ("upstream_state", StreamPrelude.jsonString(feed.upstreamState.rawValue)),
                ("upstream_url", StreamPrelude.jsonString(feed.upstreamURL)),
                ("last_event_id", StreamPrelude.jsonString(feed.lastEventID)),
                ("replay_events", String(feed.replayEvents)),
                ("replay_bytes", String(feed.replayBytes)),
                ("clients", String(snapshot.clientsPerFeed[feed.path, default: 0])),
                ("events_in", String(feed.eventsIn)),
                ("replays", String(feed.replaysServed)),
                ("replay_gaps", String(feed.replayGaps)),
                ("upstream_reconnects", String(feed.upstreamReconnects)),
                ("definition_deliveries", String(delivery?.deliveries ?? 0)),
                ("definition_evictions", String((delivery?.evictionsMaxQueue ?? 0) + (delivery?.evictionsMaxLag ?? 0))),
            ]
            items.append("{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}")
        }
        return "{\"connected_clients\":\(snapshot.connectedClients),\"feeds\":[" + items.joined(separator: ",") + "]}\n"
    }
}
