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
