import NIOCore
import SSE

extension LoopHub {
    /// Graceful drain of this loop's clients (SIGTERM): each gets a `retry:` with jitter at once, then is
    /// closed at a random moment within `window`, so that the replicas that take the clients over see
    /// them arrive spread out, not as a storm. One timer per loop does the closing (`DrainPlan` decides
    /// who closes when). The future completes when the last client of this loop is closed.
    func drain(window: TimeAmount) -> EventLoopFuture<Void> {
        self.loop.submit { () -> EventLoopFuture<Void> in
            self.beginDrain(window: window)
        }.flatMap { $0 }
    }

    private func beginDrain(window: TimeAmount) -> EventLoopFuture<Void> {
        self.loop.preconditionInEventLoop()
        let now = NIODeadline.now()
        var clients: [DrainPlan<DrainingClient>.Entry] = []
        for shard in self.shardsForDrain {
            let retry = shard.settings.retry
            for subscriber in shard.subscribers {
                var bytes = ByteBuffer()
                SSESerializer.writeRetry(
                    milliseconds: DrainPlan<DrainingClient>.jitteredRetry(retry).nanoseconds / 1_000_000,
                    into: &bytes
                )
                bytes.writeStaticString("\n")
                subscriber.transport.writePayload(bytes)
                subscriber.transport.flush()
                let at = now + DrainPlan<DrainingClient>.randomOffset(in: window)
                clients.append(.init(client: DrainingClient(subscriber: subscriber, shard: shard), closeAt: at))
            }
        }
        let promise = self.loop.makePromise(of: Void.self)
        let plan = NIOLoopBoundBox(DrainPlan<DrainingClient>(), eventLoop: self.loop)
        switch plan.value.begin(clients, window: window) {
        case .finish:
            promise.succeed(())
        case .startTimer(let step):
            self.loop.scheduleRepeatedTask(initialDelay: .zero, delay: step) { task in
                switch plan.value.timerFired(now: .now()) {
                case .close(let due):
                    Self.close(due)
                case .closeAndFinish(let due):
                    Self.close(due)
                    task.cancel()
                    promise.succeed(())
                case .finish, .startTimer:
                    preconditionFailure("a drain's timer never starts or ends an empty drain")
                }
            }
        case .close, .closeAndFinish:
            preconditionFailure("a drain closes clients only when its timer fires")
        }
        return promise.futureResult
    }

    private static func close(_ clients: [DrainingClient]) {
        for client in clients {
            // A subscriber already gone is skipped by the shard.
            client.shard.remove(client.subscriber)
            client.subscriber.sink?.close()
        }
    }
}

/// One client of a drain and the shard it is removed from.
struct DrainingClient {
    let subscriber: Subscriber
    let shard: FeedShard
}

/// Which client closes when during a drain, as a value-type state machine: `idle` until `begin` with the
/// clients and their close times, `draining` (the timer takes the due ones from the front of the sorted
/// list), then `finished` once the last is closed.
struct DrainPlan<Client> {
    struct Entry {
        var client: Client
        var closeAt: NIODeadline
    }

    enum State {
        case idle
        /// `entries` sorted by close time; those before `next` are closed.
        case draining(entries: [Entry], next: Int)
        case finished
    }

    enum Action {
        /// Nothing to drain: the drain is over at once.
        case finish
        /// Fire `timerFired` every `step`, starting now.
        case startTimer(step: TimeAmount)
        /// Close these clients; more follow.
        case close([Client])
        /// Close these clients, the last ones: stop the timer, the drain is over.
        case closeAndFinish([Client])
    }

    private(set) var state = State.idle

    /// The clients and when each closes (a random moment within `window`, see `randomOffset`).
    mutating func begin(_ clients: [Entry], window: TimeAmount) -> Action {
        guard case .idle = self.state else { preconditionFailure("invalid transition \(self.state) on begin") }
        guard !clients.isEmpty else {
            self.state = .finished
            return .finish
        }
        self.state = .draining(entries: clients.sorted { $0.closeAt < $1.closeAt }, next: 0)
        return .startTimer(step: Self.step(for: window))
    }

    /// The timer fired at `now`: the clients due by then, in order.
    mutating func timerFired(now: NIODeadline) -> Action {
        guard case .draining(let entries, var next) = self.state else {
            // The timer starts with `draining` and is stopped by `closeAndFinish`, from its own callback.
            preconditionFailure("invalid transition \(self.state) on timerFired")
        }
        var due: [Client] = []
        while next < entries.count, entries[next].closeAt <= now {
            due.append(entries[next].client)
            next += 1
        }
        guard next < entries.count else {
            self.state = .finished
            return .closeAndFinish(due)
        }
        self.state = .draining(entries: entries, next: next)
        return .close(due)
    }

    /// The number of clients not closed yet.
    var remaining: Int {
        switch self.state {
        case .idle, .finished: return 0
        case .draining(let entries, let next): return entries.count - next
        }
    }

    /// The timer's pace: a fiftieth of the window, between 10 ms and 200 ms.
    static func step(for window: TimeAmount) -> TimeAmount {
        .nanoseconds(min(max(window.nanoseconds / 50, 10_000_000), 200_000_000))
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

extension DrainPlan.Action: Equatable where Client: Equatable {}
extension DrainPlan.Entry: Equatable where Client: Equatable {}
extension DrainPlan.State: Equatable where Client: Equatable {}
