import NIOCore

/// One feed's side of a multi-feed stream: the `SubscriberOutput` of that feed's `Subscriber`. It hands
/// shared event buffers to its `MultiSession`, which swaps the event's own `id:` line for the composite id;
/// everything else goes to the connection's transport unchanged. Until the stream's head is written it
/// reports itself not writable, so what the feed delivers meanwhile waits in the subscriber's queue.
final class MultiLane: SubscriberOutput {
    /// Weak: the shard owns the subscriber that owns this lane; the session owns neither.
    private weak var session: MultiSession?
    let index: Int
    let transport: StreamTransport
    let framing: StreamFraming
    var started = false

    init(session: MultiSession, index: Int, transport: StreamTransport) {
        self.session = session
        self.index = index
        self.transport = transport
        self.framing = transport.framing
    }

    var isWritable: Bool { self.started && self.transport.isWritable }
    func heldSince() -> NIODeadline? { self.transport.heldSince() }
    func writeShared(_ bytes: ByteBuffer) { self.session?.write(bytes, from: self.index, framing: self.framing) }
    func writePayload(_ bytes: ByteBuffer) { self.transport.writePayload(bytes) }
    func flush() { self.transport.flush() }
}
