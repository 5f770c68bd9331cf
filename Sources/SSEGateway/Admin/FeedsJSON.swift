/// `/api/feeds`: one object per open feed (never an upstream credential: URLs are printed without
/// user info and configured headers are not shown; of access control only the mode, `auth`). Rates come from the admin listener's sampler
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
                // The mode only: keys, secrets, cookie names and the forward URL stay in the config.
                ("auth", snapshot.authModes[feed.path].map { JSONText.string($0.rawValue) } ?? "null"),
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
