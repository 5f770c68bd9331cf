import NIOCore

/// At most `maxConcurrent` calls in flight; further callers wait in a FIFO queue until a call ends and hands
/// them its slot, or until their own timeout takes them out of the queue.
///
/// A plain value over an opaque `Waiter` (the authorizer's continuation; an `Int` in tests): it decides who
/// runs and who is woken, and the caller carries that out. Timers are the caller's: it schedules one per
/// waiting id and calls ``expire(_:)`` when it fires.
///
/// Invariants: `0 <= inFlight <= maxConcurrent`; a waiter is in `waiting` only while `inFlight ==
/// maxConcurrent` (a freed slot goes straight to the oldest waiter); `queue` holds every waiting id in arrival
/// order plus ids of waiters that expired since, which are skipped, and it is compacted when those
/// outnumber the waiting ones.
struct CallAdmission<Waiter> {
    /// What a caller asking for a slot does next.
    enum AcquireAction: Equatable {
        /// Start the call now: a slot is taken and must be given back with ``release()``.
        case run
        /// Wait: the waiter was queued under this id. It is handed a slot by ``release()`` (then it runs and
        /// must release in turn) or given back by ``expire(_:)``.
        case wait(id: UInt64)
    }

    let maxConcurrent: Int
    private(set) var inFlight = 0
    private var waiting: [UInt64: Waiter] = [:]
    private var queue = CircularBuffer<UInt64>()
    private var nextID: UInt64 = 0

    init(maxConcurrent: Int) {
        precondition(maxConcurrent > 0, "maxConcurrent must be positive")
        self.maxConcurrent = maxConcurrent
    }

    /// Waiters queued now.
    var waitingCount: Int { self.waiting.count }

    /// Ids in the queue, expired ones included (for tests of the compaction).
    var queueCountForTesting: Int { self.queue.count }

    /// A caller wants a slot.
    mutating func acquire(_ waiter: Waiter) -> AcquireAction {
        if self.inFlight < self.maxConcurrent {
            self.inFlight += 1
            return .run
        }
        self.nextID += 1
        self.waiting[self.nextID] = waiter
        self.queue.append(self.nextID)
        return .wait(id: self.nextID)
    }

    /// A call ended. Returns the oldest waiter, which now holds the slot (wake it to run), or nil when nobody
    /// waits and the slot is free.
    mutating func release() -> Waiter? {
        precondition(self.inFlight > 0, "release() without a call in flight")
        while let id = self.queue.popFirst() {
            if let waiter = self.waiting.removeValue(forKey: id) { return waiter }
        }
        self.inFlight -= 1
        return nil
    }

    /// The wait of `id` timed out. Returns its waiter (wake it with "no slot"), or nil when it already got a
    /// slot (its timer raced with ``release()``; it runs as if the timer had not fired).
    mutating func expire(_ id: UInt64) -> Waiter? {
        guard let waiter = self.waiting.removeValue(forKey: id) else { return nil }
        // The id stays in `queue` (removing from the middle is O(n)); `release()` skips it. Compact when expired
        // ids outnumber waiting ones, so a long stall of the backend cannot grow the queue without bound.
        if self.queue.count > 2 * self.waiting.count + 64 {
            self.queue = CircularBuffer(self.queue.filter { self.waiting[$0] != nil })
        }
        return waiter
    }
}

extension CallAdmission: Sendable where Waiter: Sendable {}
