import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import SSE

@testable import SSEGateway

/// A gateway's shared state (feed registry, the loop's hub, client limits) on one `EmbeddedEventLoop`,
/// for handler and session tests without sockets. The feeds live on the same loop and are never started
/// (no upstream connection): a test hands them events with `publish`, as their upstream would.
final class EmbeddedGateway {
    let loop: EmbeddedEventLoop
    let context: GatewayContext
    let hub: LoopHub

    /// `feeds` are the configurations to serve (`Harness.feed(path, upstream:)` makes them).
    init(feeds: [FeedConfig], limits: LimitsConfig = LimitsConfig(), loop: EmbeddedEventLoop = EmbeddedEventLoop()) {
        var logger = Logger(label: "embedded-gateway")
        logger.logLevel = .critical
        self.loop = loop
        self.hub = LoopHub(loop: loop)
        let registry = FeedRegistry(feeds: feeds, group: loop, idPrefix: "t-", logger: logger)
        self.context = GatewayContext(
            registry: registry,
            access: AccessControl(logger: logger),
            hubs: [self.hub],
            limits: limits,
            logger: logger
        )
    }

    /// A feed at `path` with the upstream URL no test connects to.
    static func feed(_ path: String, configure: (inout FeedConfig) -> Void = { _ in }) throws -> FeedConfig {
        try Harness.feed(path, upstream: "http://127.0.0.1:1\(path)", configure: configure)
    }

    /// The open feed of a plain path.
    func feed(at path: String) -> Feed {
        guard let target = self.context.registry.lookup(path: Substring(path)),
            case .feed(let feed) = self.context.registry.acquire(target)
        else { preconditionFailure("no feed at \(path)") }
        return feed
    }

    /// Events arriving from the feed's upstream; runs the loop so that every client has them.
    func publish(_ path: String, _ events: [ServerSentEvent]) {
        self.feed(at: path).upstreamReceived(events)
        self.loop.run()
    }

    /// Events `ids` with data `event <id>`.
    func publish(_ path: String, ids: ClosedRange<Int>) {
        self.publish(path, ids.map { ServerSentEvent(id: "\($0)", data: "event \($0)") })
    }

    /// The stream request a GET of `path` routes to (with `headers`).
    func streamRequest(_ path: String, headers: [(String, String)] = []) -> StreamRequest {
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path)
        head.headers.add(name: "Host", value: "gateway")
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        guard case .stream(let request) = RequestRouter(registry: self.context.registry).route(head) else {
            preconditionFailure("\(path) does not route to a stream")
        }
        return request
    }

    /// Clients joined to the feed at `path` on this loop.
    func clients(_ path: String) -> Int {
        self.hub.clientsPerFeed()[path] ?? 0
    }

    /// Delivery counters of the feed definition named `name` on this loop.
    func stats(_ name: String) -> DeliveryStats {
        self.hub.snapshot()[name] ?? DeliveryStats()
    }
}
