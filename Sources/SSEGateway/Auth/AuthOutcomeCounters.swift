import NIOConcurrencyHelpers

/// Counts what the gate decided, by feed, outcome and reason, for `/metrics` and for the one summary log
/// line per interval (never one line per refused request: a reconnect storm of expired cookies would
/// otherwise log thousands of lines a second). Bumped once per stream request, under a lock.
public final class AuthOutcomeCounters: Sendable {
    public struct Key: Hashable, Sendable {
        public var feed: String
        /// `allowed`, `refused` or `unavailable`.
        public var outcome: String
        /// Why (a refusal reason such as `expired`, `forbidden`, `forward_401`; `anonymous` or `credential`
        /// for allowed requests; the failure for unavailable ones).
        public var reason: String
    }

    private let totals = NIOLockedValueBox<[Key: Int]>([:])
    /// Refusals and failures since the last summary line.
    private let sinceSummary = NIOLockedValueBox<[Key: Int]>([:])

    public init() {}

    func record(feed: String, decision: AuthDecision) {
        let key: Key
        switch decision {
        case .allowed(let grant):
            key = Key(feed: feed, outcome: "allowed", reason: grant.anonymous ? "anonymous" : "credential")
        case .refused(let refusal):
            key = Key(feed: feed, outcome: "refused", reason: refusal.reason)
        case .unavailable(let reason):
            key = Key(feed: feed, outcome: "unavailable", reason: reason)
        }
        self.totals.withLockedValue { $0[key, default: 0] += 1 }
        if key.outcome != "allowed" {
            self.sinceSummary.withLockedValue { $0[key, default: 0] += 1 }
        }
    }

    /// Every count since start, for `/metrics`.
    public var snapshot: [Key: Int] { self.totals.withLockedValue { $0 } }

    /// The refusals and failures since the last call, emptied; one summary line is made of them.
    func takeSummary() -> [Key: Int] {
        self.sinceSummary.withLockedValue { counts in
            defer { counts.removeAll(keepingCapacity: true) }
            return counts
        }
    }

    /// `feed=/prices refused expired=12 missing=3; feed=/rooms/{room} unavailable forward_timeout=2`, sorted.
    static func describe(_ counts: [Key: Int]) -> String {
        let groups = Dictionary(grouping: counts) { "feed=\($0.key.feed) \($0.key.outcome)" }
        return groups.keys.sorted().map { group in
            let reasons = groups[group]!.sorted { $0.key.reason < $1.key.reason }.map { "\($0.key.reason)=\($0.value)" }
            return group + " " + reasons.joined(separator: " ")
        }.joined(separator: "; ")
    }
}
