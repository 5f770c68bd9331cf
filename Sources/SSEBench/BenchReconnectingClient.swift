import NIOCore

/// One `--reconnect` client, as a browser's `EventSource` behaves (and, unlike one, also back after a
/// `503`): it connects, streams, and after each close, refusal or failed connect waits (the `Retry-After`
/// of a refusal, else the last `retry:`) and connects again with `Last-Event-ID`. It owns what outlives
/// its connections, the receiver (seq count, last event id, `retry:`, outage), lends it to the handler
/// of each connection and gets it back when that connection ends.
///
/// `@unchecked Sendable`: every stored var is read and written only on `loop`: its connections run
/// there, its timers fire there, and the runner reaches it through `loop.submit`.
final class BenchReconnectingClient: @unchecked Sendable {
    private let index: Int
    private let connector: BenchConnector
    let loop: EventLoop
    private let tally: BenchLoopTally
    /// Nil while a connection's handler has it.
    private var receiver: BenchStreamReceiver?
    private var channel: Channel?
    private var nextAttempt: Scheduled<Void>?
    private var attempts = 0
    private var stopped = false

    init(index: Int, connector: BenchConnector, loop: EventLoop, tally: BenchLoopTally, mode: BenchClientMode) {
        self.index = index
        self.connector = connector
        self.loop = loop
        self.tally = tally
        self.receiver = BenchStreamReceiver(loop: tally, mode: mode)
    }

    /// The first attempt; completes once its connect succeeded or failed (a failure is retried).
    func start() -> EventLoopFuture<Void> {
        self.loop.flatSubmit { self.attempt() }
    }

    /// No more attempts; closes the open connection.
    func stop() {
        self.stopped = true
        self.nextAttempt?.cancel()
        self.nextAttempt = nil
        self.channel?.close(promise: nil)
        self.channel = nil
    }

    /// For the handler of a connection that opened: the receiver, until `attemptEnded`.
    func lendReceiver() -> BenchStreamReceiver? {
        defer { self.receiver = nil }
        return self.receiver
    }

    /// The connection that borrowed the receiver has ended; the next attempt is scheduled.
    func attemptEnded(_ receiver: BenchStreamReceiver) {
        self.channel = nil
        var receiver = receiver
        let delay = receiver.nextAttempt()
        self.receiver = receiver
        self.schedule(afterMillis: delay)
    }

    private func attempt() -> EventLoopFuture<Void> {
        self.nextAttempt = nil
        guard !self.stopped else { return self.loop.makeSucceededVoidFuture() }
        if self.attempts > 0 { self.tally.tally.reconnects += 1 }
        self.attempts += 1
        self.tally.tally.timeline.record(.connects, at: BenchClock.nowMicros())
        return self.connector.connect(index: self.index, clients: 1, loop: self.loop, tally: self.tally, client: self)
            .map { channel in
                // A connection that already ended has handed the receiver back (and scheduled the next).
                if self.stopped {
                    channel.close(promise: nil)
                } else if channel.isActive && self.receiver == nil {
                    self.channel = channel
                }
            }
            .recover { _ in
                // The connect or TLS handshake failed before any handler borrowed the receiver.
                self.tally.tally.connectFailures += 1
                guard var receiver = self.receiver else { return }
                let delay = receiver.nextAttempt()
                self.receiver = receiver
                self.schedule(afterMillis: delay)
            }
    }

    private func schedule(afterMillis delay: Int) {
        guard !self.stopped else { return }
        self.nextAttempt = self.loop.scheduleTask(in: .milliseconds(Int64(delay))) {
            _ = self.attempt()
        }
    }
}
