/// Streams held per client address, for `limits.max_clients_per_address`. A value without I/O; the
/// gateway keeps one behind a lock (taken once per stream start and end, never per event).
///
/// Every admitted stream is counted whether the limit is on or not, so that turning it on with a reload
/// counts the streams already open. An address leaves the table with its last stream: the table holds
/// only addresses that have streams open, at most `max_clients` of them.
struct AddressSlots {
    private var held: [String: Int] = [:]

    /// Addresses with at least one stream.
    var addresses: Int { self.held.count }

    func count(of address: String) -> Int { self.held[address, default: 0] }

    /// Takes `count` slots for `address`, or none and returns false when that would pass `limit` (0: no limit).
    mutating func take(_ address: String, count: Int, limit: Int) -> Bool {
        let before = self.held[address, default: 0]
        if limit > 0 && before + count > limit { return false }
        self.held[address] = before + count
        return true
    }

    /// Gives back slots `take` gave.
    mutating func release(_ address: String, count: Int) {
        guard let before = self.held[address], before >= count else {
            preconditionFailure("released \(count) slots of \(address), which holds \(self.held[address] ?? 0)")
        }
        self.held[address] = before == count ? nil : before - count
    }
}
