import NIOCore

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
