/// The delivery counters of one feed definition; a value that can cross threads and be summed.
public struct DeliveryStats: Sendable, Equatable {
    public var clients = 0
    public var deliveries = 0
    public var bytesOut = 0
    public var keepalives = 0
    public var evictionsMaxQueue = 0
    public var evictionsMaxLag = 0

    public static func + (lhs: DeliveryStats, rhs: DeliveryStats) -> DeliveryStats {
        DeliveryStats(
            clients: lhs.clients + rhs.clients,
            deliveries: lhs.deliveries + rhs.deliveries,
            bytesOut: lhs.bytesOut + rhs.bytesOut,
            keepalives: lhs.keepalives + rhs.keepalives,
            evictionsMaxQueue: lhs.evictionsMaxQueue + rhs.evictionsMaxQueue,
            evictionsMaxLag: lhs.evictionsMaxLag + rhs.evictionsMaxLag
        )
    }
}
