import NIOCore

/// One feed's side of a multi-feed response: the `SubscriberOutput` of that feed's `Subscriber`. It hands
/// shared event buffers to its `MultiSession`, which swaps the event's own `id:` line for the composite id;
/// everything else goes to `output` unchanged. `output` is the connection's transport for a stream, the
/// `PollExchange` that collects the answer for a poll. Until the response starts it reports itself not
/// writable, so what the feed delivers meanwhile waits in the subscriber's queue.
final class MultiLane: SubscriberOutput {
    /// Weak: the shard owns the subscriber that owns this lane; the session owns neither.
    private weak var session: MultiSession?
    let index: Int
    let output: SubscriberOutput
    let framing: StreamFraming
    var started = false

    init(session: MultiSession, index: Int, output: SubscriberOutput) {
        self.session = session
        self.index = index
        self.output = output
        self.framing = output.framing
    }

    var isWritable: Bool { self.started && self.output.isWritable }
    func heldSince() -> NIODeadline? { self.output.heldSince() }
    func writeShared(_ bytes: ByteBuffer) { self.session?.write(bytes, through: self) }
    func writePayload(_ bytes: ByteBuffer) { self.output.writePayload(bytes) }
    func flush() { self.output.flush() }
}
