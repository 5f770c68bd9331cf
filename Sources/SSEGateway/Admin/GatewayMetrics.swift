import CoreMetrics
import NIOConcurrencyHelpers
import NIOCore
import Prometheus
import Synchronization

/// Everything `/metrics` and `/api/feeds` report, gathered from the loops on demand.
///
/// The hot path only bumps plain integers on its own loop (`DeliveryCounters`, `Feed`'s counters);
/// a scrape visits each loop once, sums, and moves the swift-metrics counters (Prometheus backend,
/// one registry per gateway) forward by the difference since the last scrape.
final class GatewayMetrics: Sendable {
    let context: GatewayContext
    let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory
    let ready = Atomic<Bool>(false)
    let reloadsApplied = Atomic<Int>(0)
    let reloadsRejected = Atomic<Int>(0)
    /// Open `/api/status/stream` connections (each has its own sampler timer).
    let statusStreams = Atomic<Int>(0)
    /// Last values reported per counter, to increment by the difference.
    private let reported = NIOLockedValueBox<[String: Int64]>([:])
    private let counters = NIOLockedValueBox<[String: CoreMetrics.Counter]>([:])
    private let gauges = NIOLockedValueBox<[String: CoreMetrics.Gauge]>([:])

    init(context: GatewayContext) {
        self.context = context
        self.factory = PrometheusMetricsFactory(registry: self.registry)
    }

    /// One consistent-enough view of the whole gateway.
    struct Snapshot: Sendable {
        var delivery: [String: DeliveryStats] = [:]
        var clientsPerFeed: [String: Int] = [:]
        var queuedBytes = 0
        var feeds: [FeedStatus] = []
        var connectedClients = 0
        /// Replay bounds per open feed path (`replay.max_events`, `replay.max_bytes`), for buffer fill.
        var replayLimits: [String: ReplayConfig] = [:]
        /// Access control mode per open feed path (`auth.mode`), for `/api/feeds`.
        var authModes: [String: AuthMode] = [:]
    }

    func snapshot(on loop: EventLoop) -> EventLoopFuture<Snapshot> {
        let hubFutures = self.context.allHubs.map { hub in
            hub.loop.submit { (hub.snapshot(), hub.clientsPerFeed(), hub.queuedBytes()) }
        }
        let (open, retired) = self.context.registry.feedsAndRetiredTotals
        let feedFutures = open.map { feed in
            feed.loop.submit { (feed.status(), feed.config.settings.replay, feed.config.settings.auth.mode) }
        }
        let connected = self.context.clientCount
        return EventLoopFuture.whenAllSucceed(hubFutures, on: loop).and(
            EventLoopFuture.whenAllSucceed(feedFutures, on: loop)
        ).map { hubs, feeds in
            var snapshot = Snapshot()
            for (delivery, clients, queued) in hubs {
                snapshot.delivery.merge(delivery, uniquingKeysWith: +)
                snapshot.clientsPerFeed.merge(clients, uniquingKeysWith: +)
                snapshot.queuedBytes += queued
            }
            snapshot.feeds = feeds.map(\.0).sorted { $0.path < $1.path } + retired
            for (status, replay, auth) in feeds {
                snapshot.replayLimits[status.path] = replay
                snapshot.authModes[status.path] = auth
            }
            snapshot.connectedClients = connected
            return snapshot
        }
    }

    /// Prometheus text for `/metrics`.
    func render(on loop: EventLoop) -> EventLoopFuture<String> {
        self.snapshot(on: loop).map { snapshot in
            self.update(from: snapshot)
            return self.registry.emitToString()
        }
    }

    private func update(from snapshot: Snapshot) {
        for (feed, stats) in snapshot.delivery {
            let labels = [("feed", feed)]
            self.gauge("ssegate_clients", labels).record(stats.clients)
            self.count("ssegate_deliveries_total", labels, stats.deliveries)
            self.count("ssegate_bytes_out_total", labels, stats.bytesOut)
            self.count("ssegate_keepalives_total", labels, stats.keepalives)
            self.count(
                "ssegate_evictions_total",
                labels + [("reason", EvictionReason.maxQueue.rawValue)],
                stats.evictionsMaxQueue
            )
            self.count(
                "ssegate_evictions_total",
                labels + [("reason", EvictionReason.maxLag.rawValue)],
                stats.evictionsMaxLag
            )
        }
        var perDefinition: [String: FeedStatus] = [:]
        var states: [String: [UpstreamStateName: Int]] = [:]
        var open: [String: Int] = [:]
        for status in snapshot.feeds {
            if var sum = perDefinition[status.definition] {
                sum.accumulate(status)
                perDefinition[status.definition] = sum
            } else {
                perDefinition[status.definition] = status
            }
            if !status.retired {
                states[status.definition, default: [:]][status.upstreamState, default: 0] += 1
                open[status.definition, default: 0] += 1
            }
        }
        for (definition, sum) in perDefinition {
            let labels = [("feed", definition)]
            self.count("ssegate_events_in_total", labels, sum.eventsIn)
            self.count("ssegate_replays_total", labels, sum.replaysServed)
            self.count("ssegate_replay_gaps_total", labels, sum.replayGaps)
            self.count("ssegate_upstream_reconnects_total", labels, sum.upstreamReconnects)
            self.gauge("ssegate_replay_buffer_events", labels).record(sum.replayEvents)
            self.gauge("ssegate_replay_buffer_bytes", labels).record(sum.replayBytes)
            self.gauge("ssegate_feeds_open", labels).record(open[definition, default: 0])
            for state in UpstreamStateName.allCases {
                self.gauge("ssegate_upstream_state", labels + [("state", state.rawValue)]).record(
                    states[definition]?[state] ?? 0
                )
            }
        }
        self.gauge("ssegate_connected_clients", []).record(snapshot.connectedClients)
        self.count(
            "ssegate_config_reloads_total",
            [("result", "applied")],
            self.reloadsApplied.load(ordering: .relaxed)
        )
        self.count(
            "ssegate_config_reloads_total",
            [("result", "rejected")],
            self.reloadsRejected.load(ordering: .relaxed)
        )
        self.gauge("ssegate_queued_bytes", []).record(snapshot.queuedBytes)
        for (key, total) in self.context.access.outcomes.snapshot {
            self.count(
                "ssegate_auth_requests_total",
                [("feed", key.feed), ("outcome", key.outcome), ("reason", key.reason)],
                total
            )
        }
        for (url, stats) in self.context.access.forwardStats {
            let labels = [("url", url)]
            self.count("ssegate_forward_auth_calls_total", labels, stats.backendCalls)
            self.count("ssegate_forward_auth_cache_hits_total", labels, stats.cacheHits)
            self.count("ssegate_forward_auth_coalesced_total", labels, stats.coalesced)
            self.count("ssegate_forward_auth_saturated_total", labels, stats.saturated)
            self.gauge("ssegate_forward_auth_in_flight", labels).record(stats.inFlight)
            self.gauge("ssegate_forward_auth_cached_answers", labels).record(stats.cachedAnswers)
        }
        self.gauge("ssegate_poll_waiting", []).record(self.context.pollWaitingCount)
        self.count("ssegate_access_log_dropped_total", [], self.context.accessLog.droppedLines)
        for result in PollResult.allCases {
            self.count("ssegate_poll_responses_total", [("result", result.rawValue)], self.context.pollCount(result))
        }
        for reason in ProxyProtocolRejections.Reason.allCases {
            self.count(
                "ssegate_proxy_protocol_rejected_total",
                [("reason", reason.rawValue)],
                self.context.proxyRejections.count(reason)
            )
        }
        self.count("ssegate_clients_per_address_refused_total", [], self.context.overAddressLimitCount)
        self.gauge("ssegate_socket_send_buffer_bytes", []).record(
            self.context.socketSendBufferBytes.load(ordering: .relaxed)
        )
        self.count("ssegate_tls_handshake_timeouts_total", [], self.context.tlsHandshakeTimeoutCount)
        self.count("ssegate_header_count_refusals_total", [], self.context.tooManyHeaderFieldsCount)
        self.count("ssegate_idle_connection_closes_total", [], self.context.idleConnectionCloseCount)
        for reason in HTTP2ConnectionError.allCases {
            self.count(
                "ssegate_http2_connection_errors_total",
                [("reason", reason.rawValue)],
                self.context.http2ConnectionErrors(reason)
            )
        }
        self.count("ssegate_connections_accepted_total", [], self.context.connectionsAdmitted)
        for refusal in ListenerAdmission.Refusal.allCases {
            self.count(
                "ssegate_connections_refused_total",
                [("reason", refusal.rawValue)],
                self.context.connectionsRefused(refusal)
            )
        }
        for reason in HTTP2FloodGuard.Reason.allCases {
            self.count(
                "ssegate_http2_flood_closes_total",
                [("reason", reason.rawValue)],
                self.context.floodCloses(reason)
            )
        }
    }

    private static func key(_ name: String, _ labels: [(String, String)]) -> String {
        name + "{" + labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",") + "}"
    }

    private func count(_ name: String, _ labels: [(String, String)], _ total: Int) {
        let key = Self.key(name, labels)
        let counter = self.counters.withLockedValue { counters in
            if let existing = counters[key] { return existing }
            let made = CoreMetrics.Counter(label: name, dimensions: labels, factory: self.factory)
            counters[key] = made
            return made
        }
        let delta = self.reported.withLockedValue { reported -> Int64 in
            let previous = reported[key, default: 0]
            reported[key] = max(previous, Int64(total))
            return Int64(total) - previous
        }
        if delta > 0 { counter.increment(by: delta) }
    }

    private func gauge(_ name: String, _ labels: [(String, String)]) -> CoreMetrics.Gauge {
        let key = Self.key(name, labels)
        return self.gauges.withLockedValue { gauges in
            if let existing = gauges[key] { return existing }
            let made = CoreMetrics.Gauge(label: name, dimensions: labels, factory: self.factory)
            gauges[key] = made
            return made
        }
    }
}
