import NIOCore

/// The answer cache with single flights in front of it: concurrent misses for one key share one backend call.
///
/// A plain value over opaque `Waiter`s (the authorizer's continuations; `Int`s in tests). The first caller to
/// miss a key leads: it makes the call and reports with ``land(_:answer:now:)``, which hands back every
/// waiter of that flight, itself included, to wake with the same result. A key is in `flights` exactly while
/// its call is under way, so at most one call per key is ever in flight.
struct CoalescedLookup<Key: Hashable, Answer, Waiter> {
    /// What a caller that joins a key does next.
    enum JoinAction {
        /// The answer was cached meanwhile (another flight landed between the caller's first look and its
        /// join): use it; the waiter was not kept.
        case cached(Answer)
        /// No flight for the key: the caller makes the call and must ``land(_:answer:now:)`` it.
        case lead
        /// A flight is under way: the waiter is woken when it lands.
        case follow
    }

    private(set) var cache: AnswerCache<Key, Answer>
    private var flights: [Key: [Waiter]] = [:]

    init(ttl: TimeAmount, maxEntries: Int) {
        self.cache = AnswerCache(ttl: ttl, maxEntries: maxEntries)
    }

    /// Keys whose call is under way.
    var flightCount: Int { self.flights.count }

    /// The cached answer for `key` at `now`, without joining anything (the fast path of a hit).
    mutating func cached(_ key: Key, now: NIODeadline) -> Answer? {
        self.cache.answer(for: key, now: now)
    }

    /// Joins the flight for `key`, starting it when there is none.
    mutating func join(_ key: Key, waiter: Waiter, now: NIODeadline) -> JoinAction {
        if let answer = self.cache.answer(for: key, now: now) { return .cached(answer) }
        // Appends in place (no copy of the array) when the key has a flight.
        if self.flights[key]?.append(waiter) != nil { return .follow }
        self.flights[key] = [waiter]
        return .lead
    }

    /// The flight for `key` ended: caches `answer` (nil for "no usable answer", which is never cached) and
    /// returns the waiters to wake with the result.
    mutating func land(_ key: Key, answer: Answer?, now: NIODeadline) -> [Waiter] {
        guard let waiters = self.flights.removeValue(forKey: key) else {
            preconditionFailure("land(_:) for a key without a flight")
        }
        if let answer { self.cache.insert(answer, for: key, now: now) }
        return waiters
    }
}

extension CoalescedLookup: Sendable where Key: Sendable, Answer: Sendable, Waiter: Sendable {}
