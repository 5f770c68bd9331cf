/// One event of the built-in origin as the load client sees it: its `"seq":` number, its `"ts":` send
/// time (µs since the epoch) when present, how many seq numbers were skipped just before it, whether its
/// number came before, and (when the scanner reads fields) the event's own `id:`.
public struct ScannedDelivery: Sendable, Equatable {
    public var seq: Int64
    public var sentMicros: Int64?
    public var missedBefore: Int
    /// Its seq number is at or below the highest one before it on this stream.
    public var duplicate: Bool
    /// The value of the event's last `id:` line; nil when it has none or the scanner does not read fields.
    public var id: String?

    public init(seq: Int64, sentMicros: Int64?, missedBefore: Int, duplicate: Bool = false, id: String? = nil) {
        self.seq = seq
        self.sentMicros = sentMicros
        self.missedBefore = missedBefore
        self.duplicate = duplicate
        self.id = id
    }
}
