import NIOCore

/// Per-client backpressure bounds (SPEC §3 "slow consumers").
public struct ClientLimitsConfig: Sendable, Equatable {
    /// Bytes a client may fall behind before it is evicted.
    public var maxQueue: Int = 1024 * 1024
    /// Age of its oldest unsent event before it is evicted.
    public var maxLag: TimeAmount = .seconds(30)

    public init() {}
}
