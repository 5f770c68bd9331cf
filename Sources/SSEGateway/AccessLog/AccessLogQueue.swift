/// The access log's lines waiting for its writer thread, at most `capacity` of them: a line offered to a
/// full queue is refused (the caller counts it as dropped), so a slow disk costs lines, never memory or an
/// event loop's time. A plain value; `AccessLog` guards it with its lock.
struct AccessLogQueue {
    let capacity: Int
    private(set) var lines: [String] = []

    init(capacity: Int) {
        precondition(capacity > 0, "an access log queue holds at least one line")
        self.capacity = capacity
    }

    /// Takes `line`, or returns false when `capacity` lines are waiting.
    mutating func offer(_ line: String) -> Bool {
        guard self.lines.count < self.capacity else { return false }
        self.lines.append(line)
        return true
    }

    /// Everything waiting, oldest first; the queue is empty afterwards.
    mutating func takeAll() -> [String] {
        guard !self.lines.isEmpty else { return [] }
        var taken: [String] = []
        taken.reserveCapacity(min(self.lines.count * 2, self.capacity))
        swap(&taken, &self.lines)
        return taken
    }
}
