/// Per event loop, per feed definition counters of the delivery side. Plain integers touched only on
/// their loop (no lock or atomic on the hot path); `/metrics` sums the loops' copies on scrape.
public final class DeliveryCounters {
    public var stats = DeliveryStats()

    public init() {}

    func countEviction(_ reason: EvictionReason) {
        switch reason {
        case .maxQueue: self.stats.evictionsMaxQueue += 1
        case .maxLag: self.stats.evictionsMaxLag += 1
        }
    }
}
