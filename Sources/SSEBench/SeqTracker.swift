/// Follows one feed's `"seq":` numbers as they arrive: how many were skipped before each one, and whether
/// it came before (a number at or below the highest seen: sent twice, or out of order).
struct SeqTracker: Sendable, Equatable {
    /// What one arriving number says.
    struct Step: Sendable, Equatable {
        /// Numbers between the highest seen and this one that never came.
        var missed: Int
        /// At or below the highest seen.
        var duplicate: Bool
    }

    /// The highest number seen, -1 before the first.
    private(set) var highest: Int64 = -1

    mutating func record(_ seq: Int64) -> Step {
        guard self.highest >= 0 else {
            self.highest = seq
            return Step(missed: 0, duplicate: false)
        }
        guard seq > self.highest else { return Step(missed: 0, duplicate: true) }
        let missed = Int(seq - self.highest - 1)
        self.highest = seq
        return Step(missed: missed, duplicate: false)
    }
}
