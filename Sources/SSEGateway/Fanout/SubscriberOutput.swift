import NIOCore

/// Where the fan-out writes one subscriber's bytes: its side of a client stream. The downstream layer
/// implements it (`StreamTransport` adds the response head and the ways a stream ends), so the fan-out
/// never names a connection type. All calls happen on the subscriber's event loop.
protocol SubscriberOutput: AnyObject {
    /// Which form of the shared event buffers `writeShared` takes.
    var framing: StreamFraming { get }
    var isWritable: Bool { get }
    /// Asked by the lag check on each tick: since when bytes written to the transport have been held back
    /// from the network, or nil when none are known to be (or the transport cannot tell). HTTP/2 flow
    /// control holds a stream's bytes while the client's window is shut, below the channel's watermarks;
    /// this is how the lag check sees them. A transport may start watching with the next write when asked.
    func heldSince() -> NIODeadline?
    /// Bytes already in `framing`'s form (a shared event buffer, or a keepalive), without flushing.
    func writeShared(_ bytes: ByteBuffer)
    /// Bare SSE bytes that the transport frames itself (the prelude, a drain's `retry:`), without flushing.
    func writePayload(_ bytes: ByteBuffer)
    func flush()
}
