/// One event of the built-in origin as the load client sees it: its `"seq":` number, its `"ts":` send
/// time (µs since the epoch) when present, and how many seq numbers were skipped just before it.
public struct ScannedDelivery: Sendable, Equatable {
    public var seq: Int64
    public var sentMicros: Int64?
    public var missedBefore: Int
}
