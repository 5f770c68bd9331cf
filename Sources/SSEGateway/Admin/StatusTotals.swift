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
