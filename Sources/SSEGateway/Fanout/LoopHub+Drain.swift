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
                if subscriber.pollsOnce {
                    // A poll answers now with what it has; its client asks again (this replica refuses).
                    shard.remove(subscriber)
                    subscriber.sink?.close(.drained)
                    continue
                }
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
            client.subscriber.sink?.close(.drained)
        }
    }
}
