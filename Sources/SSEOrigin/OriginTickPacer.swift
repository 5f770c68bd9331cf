import NIOCore

/// Turns the origin's events-per-second rate into a count per tick: each tick sends the whole events due
/// since the previous one and carries the fraction, so the rate holds however late a tick fires.
struct OriginTickPacer: Sendable {
    let rate: Double
    private var carry = 0.0
    private var last: NIODeadline

    init(rate: Double, start: NIODeadline) {
        self.rate = rate
        self.last = start
    }

    /// Events due at `now` (may be 0).
    mutating func due(at now: NIODeadline) -> Int {
        self.carry += Double((now - self.last).nanoseconds) / 1e9 * self.rate
        self.last = now
        let count = Int(self.carry)
        self.carry -= Double(count)
        return count
    }
}
