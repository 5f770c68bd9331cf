import NIOCore
import SSE

extension LoopHub {
    /// Graceful drain of this loop's clients (SIGTERM): each gets a `retry:` with jitter at once, then is
    /// closed at a random moment within `window`, so that the replicas that take the clients over see
    /// them arrive spread out, not as a storm. One timer per loop does the closing. The future completes
    /// when the last client of this loop is closed.
    func drain(window: TimeAmount) -> EventLoopFuture<Void> {
        self.loop.submit { () -> EventLoopFuture<Void> in
            self.beginDrain(window: window)
        }.flatMap { $0 }
    }

    private func beginDrain(window: TimeAmount) -> EventLoopFuture<Void> {
        let now = NIODeadline.now()
        var plan = DrainPlan()
        for shard in self.shardsForDrain {
            let retry = shard.settings.retry
            for subscriber in shard.subscribers {
                var bytes = ByteBuffer()
                SSESerializer.writeRetry(
                    milliseconds: DrainPlan.jitteredRetry(retry).nanoseconds / 1_000_000,
                    into: &bytes
                )
                bytes.writeStaticString("\n")
                subscriber.transport.writePayload(bytes)
                subscriber.transport.flush()
                plan.add(subscriber, of: shard, at: now + DrainPlan.randomOffset(in: window))
            }
        }
        let promise = self.loop.makePromise(of: Void.self)
        guard !plan.isEmpty else {
            promise.succeed(())
            return promise.futureResult
        }
        plan.sort()
        let step = TimeAmount.nanoseconds(min(max(window.nanoseconds / 50, 10_000_000), 200_000_000))
        self.loop.scheduleRepeatedTask(initialDelay: .zero, delay: step) { task in
            for (subscriber, shard) in plan.takeDue(before: .now()) {
                shard.remove(subscriber)
                subscriber.sink?.close()
            }
            if plan.isEmpty {
                task.cancel()
                promise.succeed(())
            }
        }
        return promise.futureResult
    }
}

/// Which client closes when during a drain: a list sorted by close time, taken from the front.
struct DrainPlan {
    private var entries: [(at: NIODeadline, subscriber: Subscriber, shard: FeedShard)] = []
    private var next = 0

    var isEmpty: Bool { self.next >= self.entries.count }

    mutating func add(_ subscriber: Subscriber, of shard: FeedShard, at deadline: NIODeadline) {
        self.entries.append((deadline, subscriber, shard))
    }

    mutating func sort() {
        self.entries.sort { $0.at < $1.at }
    }

    /// The entries due by `now`, in order (a subscriber already gone is skipped by the shard).
    mutating func takeDue(before now: NIODeadline) -> [(Subscriber, FeedShard)] {
        var due: [(Subscriber, FeedShard)] = []
        while self.next < self.entries.count, self.entries[self.next].at <= now {
            due.append((self.entries[self.next].subscriber, self.entries[self.next].shard))
            self.next += 1
        }
        return due
    }

    /// A uniformly random moment in `[0, window)`.
    static func randomOffset(in window: TimeAmount) -> TimeAmount {
        guard window.nanoseconds > 0 else { return .zero }
        return .nanoseconds(Int64.random(in: 0..<window.nanoseconds))
    }

    /// The feed's `retry` plus up to as much again (at least one second's spread), so reconnects
    /// scatter over time even if every client was closed at the same moment.
    static func jitteredRetry(_ retry: TimeAmount) -> TimeAmount {
        let spread = max(retry.nanoseconds, 1_000_000_000)
        return .nanoseconds(retry.nanoseconds + Int64.random(in: 0...spread))
    }
}
