import NIOCore

/// A token bucket without I/O: `rate` tokens per second, at most one second's worth (`rate`) banked, so a
/// quiet listener admits a burst of `rate` at once and then `rate` per second.
///
/// Tokens are counted in nanosecond units (one token = 10⁹ units) so that refilling is exact integer
/// arithmetic at any rate. The rate is passed with every `take`, so a reload that changes it applies at
/// the next connection; a bucket whose rate changes keeps its tokens (capped at the new burst).
struct TokenBucket: Equatable {
    private static let unitsPerToken: Int64 = 1_000_000_000

    /// Banked units; starts full.
    private var units: Int64?
    private var last: NIODeadline?

    init() {}

    /// Takes one token at `now`; false when none is left. `rate` 0 (no limit) always succeeds.
    mutating func take(rate: Int, now: NIODeadline) -> Bool {
        guard rate > 0 else { return true }
        let capacity = Int64(rate) * Self.unitsPerToken
        var units = self.units ?? capacity
        if let last = self.last, now > last {
            // Over a second the bucket is full anyway; the cap keeps the product from overflowing.
            let elapsed = min((now - last).nanoseconds, Self.unitsPerToken)
            units += elapsed * Int64(rate)
        }
        units = min(units, capacity)
        if self.last.map({ now > $0 }) ?? true { self.last = now }
        guard units >= Self.unitsPerToken else {
            self.units = units
            return false
        }
        self.units = units - Self.unitsPerToken
        return true
    }
}
