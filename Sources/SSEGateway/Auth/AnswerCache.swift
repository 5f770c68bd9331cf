import NIOCore

/// A bounded cache of answers that all live for the same `ttl` (forward auth's allow and refuse answers).
///
/// A plain value: no clock of its own (every call is given `now`), no I/O, no locks.
///
/// Because every entry lives exactly `ttl`, insertion order is expiry order: `order` is a FIFO of
/// insertions, its front is both the oldest and the first to expire. Expired entries at the front are dropped
/// on every insert and, past `maxEntries`, the oldest live ones go too: amortised O(1) per call, with no scan
/// of the table, which matters in a reconnect storm. A lookup that finds an expired entry removes it at once.
///
/// Invariants: `entries.count <= maxEntries`; every live entry has exactly one element in `order` with its
/// generation; elements whose generation no longer matches (the entry was removed or replaced) are stale and
/// skipped, and `order` is compacted when they outnumber the live ones by more than `compactionSlack`.
struct AnswerCache<Key: Hashable, Answer> {
    fileprivate struct Entry {
        var answer: Answer
        var expires: NIODeadline
        var generation: UInt64
    }

    let ttl: TimeAmount
    let maxEntries: Int
    private var entries: [Key: Entry] = [:]
    private var order = CircularBuffer<(key: Key, generation: UInt64)>()
    private var nextGeneration: UInt64 = 0
    /// How far stale elements in `order` may outnumber live ones before it is rebuilt.
    private static var compactionSlack: Int { 64 }

    init(ttl: TimeAmount, maxEntries: Int) {
        precondition(maxEntries >= 0, "maxEntries must not be negative")
        self.ttl = ttl
        self.maxEntries = maxEntries
    }

    /// Live entries (expired ones not yet dropped included until the next insert or lookup of them).
    var count: Int { self.entries.count }

    /// The answer cached for `key`, or nil when there is none or it expired at or before `now`.
    mutating func answer(for key: Key, now: NIODeadline) -> Answer? {
        guard let entry = self.entries[key] else { return nil }
        guard entry.expires > now else {
            // Its element in `order` turns stale; the next insert's sweep of the front drops it.
            self.entries[key] = nil
            return nil
        }
        return entry.answer
    }

    /// Elements of `order`, stale ones included (for tests of the compaction).
    var orderCountForTesting: Int { self.order.count }

    /// Caches `answer` for `key` from `now` until `now + ttl`, replacing any earlier answer, then drops expired
    /// entries and, past `maxEntries`, the oldest.
    mutating func insert(_ answer: Answer, for key: Key, now: NIODeadline) {
        self.dropExpired(now: now)
        guard self.maxEntries > 0, self.ttl > .zero else { return }
        self.nextGeneration += 1
        self.entries[key] = Entry(answer: answer, expires: now + self.ttl, generation: self.nextGeneration)
        self.order.append((key, self.nextGeneration))
        while self.entries.count > self.maxEntries {
            self.dropFront()
        }
        if self.order.count > 2 * self.entries.count + Self.compactionSlack {
            self.compact()
        }
    }

    /// Drops entries that expired at or before `now`, front first. Inserts may arrive a few microseconds out
    /// of clock order (callers read the clock before taking their lock), so the sweep may stop at an entry that
    /// expires a moment later than one behind it; `answer(for:)` checks expiry itself, so that is harmless.
    private mutating func dropExpired(now: NIODeadline) {
        while let front = self.order.first {
            if let entry = self.entries[front.key], entry.generation == front.generation {
                guard entry.expires <= now else { return }
                self.entries[front.key] = nil
            }
            self.order.removeFirst()
        }
    }

    /// Removes the front element of `order` and, when it is not stale, its entry.
    private mutating func dropFront() {
        let front = self.order.removeFirst()
        if let entry = self.entries[front.key], entry.generation == front.generation {
            self.entries[front.key] = nil
        }
    }

    /// Rebuilds `order` without stale elements. They are more than half of it, and each was made by an earlier
    /// call, so the O(n) rebuild costs O(1) per call amortised.
    private mutating func compact() {
        var live = CircularBuffer<(key: Key, generation: UInt64)>(initialCapacity: self.entries.count)
        for element in self.order {
            if let entry = self.entries[element.key], entry.generation == element.generation {
                live.append(element)
            }
        }
        self.order = live
    }
}

extension AnswerCache: Sendable where Key: Sendable, Answer: Sendable {}
extension AnswerCache.Entry: Sendable where Key: Sendable, Answer: Sendable {}
