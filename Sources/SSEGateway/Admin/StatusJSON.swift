import Foundation

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
