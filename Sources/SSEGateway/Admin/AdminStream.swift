import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// Rates from two successive snapshots: the gateway counts totals only, so events/s, deliveries/s and
/// bytes/s are differences of totals divided by the time between two samples (never estimated).
struct StatusSample: Sendable {
    /// Seconds between this sample and the previous one; nil for the first (no rates yet).
    var interval: Double?
    /// Per open feed path: events received from the upstream per second.
    var eventsPerSecond: [String: Double] = [:]
    /// Per feed definition (delivery counters are kept per definition): deliveries and bytes per second.
    var deliveriesPerSecond: [String: Double] = [:]
    var bytesPerSecond: [String: Double] = [:]
    /// Gateway-wide rates (retired template instances included, so a closing feed is no dip).
    var totalEventsPerSecond: Double?
    var totalDeliveriesPerSecond: Double?
    var totalBytesPerSecond: Double?
    /// Per open feed path: seconds since the sampler last saw its events-in counter move (0 means it
    /// moved during the last interval); nil until a move was seen. A sampled idle time, not a latency.
    var idleSeconds: [String: Double] = [:]
}

/// Totals a sampler compares between snapshots.
struct StatusTotals: Sendable, Equatable {
    /// Delivery-side totals over every feed definition.
    var delivery = DeliveryStats()
    var eventsIn = 0
    var replayGaps = 0
    var replaysServed = 0
    var upstreamReconnects = 0

    var deliveries: Int { self.delivery.deliveries }
    var bytesOut: Int { self.delivery.bytesOut }
    var keepalives: Int { self.delivery.keepalives }
    var evictionsMaxQueue: Int { self.delivery.evictionsMaxQueue }
    var evictionsMaxLag: Int { self.delivery.evictionsMaxLag }

    init() {}

    init(_ snapshot: GatewayMetrics.Snapshot) {
        for feed in snapshot.feeds {
            self.eventsIn += feed.eventsIn
            self.replayGaps += feed.replayGaps
            self.replaysServed += feed.replaysServed
            self.upstreamReconnects += feed.upstreamReconnects
        }
        self.delivery = snapshot.delivery.values.reduce(DeliveryStats(), +)
    }
}

/// Turns successive snapshots into rates. One per status stream (and one gateway-wide for `/api/feeds`).
struct StatusSampler {
    private var previous:
        (at: NIODeadline, totals: StatusTotals, eventsIn: [String: Int], delivery: [String: DeliveryStats])?
    private var lastMove: [String: NIODeadline] = [:]

    mutating func sample(_ snapshot: GatewayMetrics.Snapshot, now: NIODeadline = .now()) -> StatusSample {
        let totals = StatusTotals(snapshot)
        var eventsIn: [String: Int] = [:]
        for feed in snapshot.feeds where !feed.retired { eventsIn[feed.path] = feed.eventsIn }
        var result = StatusSample()
        if let previous, now > previous.at {
            let seconds = Double((now - previous.at).nanoseconds) / 1e9
            func rate(_ current: Int, _ before: Int) -> Double {
                // A reload can drop a definition's counters; a counter that went back is no negative rate.
                (Double(max(0, current - before)) / seconds * 100).rounded() / 100
            }
            result.interval = (seconds * 1000).rounded() / 1000
            for (path, count) in eventsIn {
                // A feed that opened during the interval started from zero.
                let before = previous.eventsIn[path] ?? 0
                result.eventsPerSecond[path] = rate(count, before)
                if count > before { self.lastMove[path] = now }
            }
            for (definition, stats) in snapshot.delivery {
                let before = previous.delivery[definition] ?? DeliveryStats()
                result.deliveriesPerSecond[definition] = rate(stats.deliveries, before.deliveries)
                result.bytesPerSecond[definition] = rate(stats.bytesOut, before.bytesOut)
            }
            result.totalEventsPerSecond = rate(totals.eventsIn, previous.totals.eventsIn)
            result.totalDeliveriesPerSecond = rate(totals.deliveries, previous.totals.deliveries)
            result.totalBytesPerSecond = rate(totals.bytesOut, previous.totals.bytesOut)
        }
        self.lastMove = self.lastMove.filter { eventsIn[$0.key] != nil }
        for (path, at) in self.lastMove {
            result.idleSeconds[path] = (Double((now - at).nanoseconds) / 1e8).rounded() / 10
        }
        self.previous = (now, totals, eventsIn, snapshot.delivery)
        return result
    }
}

/// The JSON of one `/api/status/stream` event: totals, rates, one object per open feed and one per
/// feed definition. No credential: upstream URLs come without user info, configured headers are not
/// shown. Field names match `/api/feeds` where they overlap.
enum StatusJSON {
    static func render(_ snapshot: GatewayMetrics.Snapshot, _ sample: StatusSample, ready: Bool) -> String {
        let totals = StatusTotals(snapshot)
        let open = snapshot.feeds.filter { !$0.retired }
        var instances: [String: Int] = [:]
        for feed in open { instances[feed.definition, default: 0] += 1 }
        let feeds = open.map { feed -> String in
            let limits = snapshot.replayLimits[feed.path]
            return object([
                ("path", json(feed.path)),
                ("name", json(feed.definition)),
                ("upstream_state", json(feed.upstreamState.rawValue)),
                ("upstream_url", json(feed.upstreamURL)),
                ("last_event_id", json(feed.lastEventID)),
                ("clients", String(snapshot.clientsPerFeed[feed.path, default: 0])),
                ("events_in", String(feed.eventsIn)),
                ("events_per_s", number(sample.eventsPerSecond[feed.path])),
                ("idle_s", number(sample.idleSeconds[feed.path])),
                ("replay_events", String(feed.replayEvents)),
                ("replay_max_events", limits.map { String($0.maxEvents) } ?? "null"),
                ("replay_bytes", String(feed.replayBytes)),
                ("replay_max_bytes", limits.map { String($0.maxBytes) } ?? "null"),
                ("replays", String(feed.replaysServed)),
                ("replay_gaps", String(feed.replayGaps)),
                ("upstream_reconnects", String(feed.upstreamReconnects)),
                ("upstream_failures", String(feed.upstreamFailures)),
            ])
        }
        let names = Set(snapshot.delivery.keys).union(instances.keys).sorted()
        let definitions = names.map { name -> String in
            let stats = snapshot.delivery[name] ?? DeliveryStats()
            return object([
                ("name", json(name)),
                ("open_feeds", String(instances[name, default: 0])),
                ("clients", String(stats.clients)),
                ("deliveries", String(stats.deliveries)),
                ("deliveries_per_s", number(sample.deliveriesPerSecond[name] ?? sample.interval.map { _ in 0 })),
                ("bytes_out", String(stats.bytesOut)),
                ("bytes_per_s", number(sample.bytesPerSecond[name] ?? sample.interval.map { _ in 0 })),
                ("keepalives", String(stats.keepalives)),
                ("evictions", evictions(stats.evictionsMaxQueue, stats.evictionsMaxLag)),
            ])
        }
        return object([
            ("time", String(Int64(Date().timeIntervalSince1970 * 1000))),
            ("ready", ready ? "true" : "false"),
            ("interval_s", number(sample.interval)),
            ("connected_clients", String(snapshot.connectedClients)),
            ("queued_bytes", String(snapshot.queuedBytes)),
            (
                "totals",
                object([
                    ("events_in", String(totals.eventsIn)),
                    ("deliveries", String(totals.deliveries)),
                    ("bytes_out", String(totals.bytesOut)),
                    ("keepalives", String(totals.keepalives)),
                    ("evictions", evictions(totals.evictionsMaxQueue, totals.evictionsMaxLag)),
                    ("replays", String(totals.replaysServed)),
                    ("replay_gaps", String(totals.replayGaps)),
                    ("upstream_reconnects", String(totals.upstreamReconnects)),
                ])
            ),
            (
                "rates",
                object([
                    ("events_in", number(sample.totalEventsPerSecond)),
                    ("deliveries", number(sample.totalDeliveriesPerSecond)),
                    ("bytes_out", number(sample.totalBytesPerSecond)),
                ])
            ),
            ("feeds", "[" + feeds.joined(separator: ",") + "]"),
            ("definitions", "[" + definitions.joined(separator: ",") + "]"),
        ])
    }

    static func evictions(_ maxQueue: Int, _ maxLag: Int) -> String {
        object([(EvictionReason.maxQueue.rawValue, String(maxQueue)), (EvictionReason.maxLag.rawValue, String(maxLag))])
    }

    static func object(_ fields: [(String, String)]) -> String {
        "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
    }

    static func json(_ text: String) -> String { JSONText.string(text) }

    static func number(_ value: Double?) -> String {
        guard let value, value.isFinite else { return "null" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }
}

/// The gateway-wide sampler behind the rates of `/api/feeds`: one timer per admin listener (every
/// second, one hop to each loop), stopped when the listener closes.
final class AdminRates: Sendable {
    private let metrics: GatewayMetrics
    private let state = NIOLockedValueBox<(sampler: StatusSampler, latest: StatusSample, task: RepeatedTask?)>(
        (StatusSampler(), StatusSample(), nil)
    )

    init(metrics: GatewayMetrics) {
        self.metrics = metrics
    }

    var latest: StatusSample { self.state.withLockedValue { $0.latest } }

    func start(on loop: EventLoop, every interval: TimeAmount = AdminStream.defaultInterval) {
        let task = loop.scheduleRepeatedAsyncTask(initialDelay: .zero, delay: interval) { [weak self] _ in
            guard let self else { return loop.makeSucceededVoidFuture() }
            return self.metrics.snapshot(on: loop).map { snapshot in
                self.state.withLockedValue { $0.latest = $0.sampler.sample(snapshot) }
            }.recover { _ in }
        }
        self.state.withLockedValue { $0.task = task }
    }

    func stop() {
        self.state.withLockedValue { state in
            state.task?.cancel()
            state.task = nil
        }
    }
}

/// `GET /api/status/stream`: a `text/event-stream` of `StatusJSON` objects, one per interval (1 s by
/// default; `?interval_ms=` between 100 and 60000 for tests and impatient people). One timer per admin
/// connection, cancelled when the connection closes or the admin listener does. A client that does not
/// read gets no backlog: a sample is skipped while the channel is not writable (totals are absolute).
final class AdminStream {
    static let defaultInterval = TimeAmount.seconds(1)
    static let retry = 2000

    private let metrics: GatewayMetrics
    private let interval: TimeAmount
    private var sampler = StatusSampler()
    private var task: RepeatedTask?
    private(set) var stopped = false

    init(metrics: GatewayMetrics, interval: TimeAmount) {
        self.metrics = metrics
        self.interval = interval
    }

    /// The interval a request asked for (`interval_ms`), clamped, or the default.
    static func interval(query: Substring) -> TimeAmount {
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2, parts[0] == "interval_ms", let ms = Int64(parts[1]) {
                return .milliseconds(min(60_000, max(100, ms)))
            }
        }
        return Self.defaultInterval
    }

    static func responseHead(version: HTTPVersion) -> HTTPResponseHead {
        HTTPResponseHead(
            version: version,
            status: .ok,
            headers: HTTPHeaders([
                ("Content-Type", "text/event-stream; charset=utf-8"),
                ("Cache-Control", "no-cache, no-transform"),
                ("X-Accel-Buffering", "no"),
                ("Connection", version.major == 1 && version.minor == 0 ? "close" : "keep-alive"),
            ])
        )
    }

    /// Writes the head and `retry:`, then one event per interval until `stop()`.
    func start(context: ChannelHandlerContext, version: HTTPVersion) {
        self.metrics.statusStreams.add(1, ordering: .relaxed)
        context.write(NIOAny(HTTPServerResponsePart.head(Self.responseHead(version: version))), promise: nil)
        context.writeAndFlush(
            NIOAny(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: "retry: \(Self.retry)\n\n")))),
            promise: nil
        )
        let loop = context.eventLoop
        let bound = NIOLoopBound((stream: self, context: context), eventLoop: loop)
        self.task = loop.scheduleRepeatedAsyncTask(initialDelay: .zero, delay: self.interval) { _ in
            let (stream, context) = bound.value
            guard !stream.stopped else { return loop.makeSucceededVoidFuture() }
            // The admin listener closed (shutdown, or a reload moved it): its streams end with it.
            if let listener = context.channel.parent, !listener.isActive {
                stream.stop()
                context.close(promise: nil)
                return loop.makeSucceededVoidFuture()
            }
            return stream.metrics.snapshot(on: loop).map { snapshot in
                let (stream, context) = bound.value
                let sample = stream.sampler.sample(snapshot)
                guard !stream.stopped, context.channel.isWritable else { return }
                let json = StatusJSON.render(snapshot, sample, ready: stream.metrics.ready.load(ordering: .relaxed))
                let event = ByteBuffer(string: "data: \(json)\n\n")
                context.writeAndFlush(NIOAny(HTTPServerResponsePart.body(.byteBuffer(event))), promise: nil)
            }.recover { _ in }
        }
    }

    func stop() {
        guard !self.stopped else { return }
        self.stopped = true
        if self.task != nil { self.metrics.statusStreams.subtract(1, ordering: .relaxed) }
        self.task?.cancel()
        self.task = nil
    }
}
