import NIOCore

/// How one SSE response reaches its client: an HTTP/1 connection, an HTTP/2 stream, or a compressor in
/// front of either. Everything protocol-specific about a stream lives behind this; `StreamSession` does
/// the rest. All calls happen on the transport's event loop.
protocol StreamTransport: AnyObject {
    /// Which form of the shared event buffers `writeShared` takes.
    var framing: StreamFraming { get }
    var isWritable: Bool { get }
    /// Asked by the lag check on each tick: since when bytes written to the transport have been held back
    /// from the network, or nil when none are known to be (or the transport cannot tell). HTTP/2 flow
    /// control holds a stream's bytes while the client's window is shut, below the channel's watermarks;
    /// this is how the lag check sees them. A transport may start watching with the next write when asked.
    func heldSince() -> NIODeadline?
    /// The stream's response head; the transport adds its protocol's own headers (chunking, connection).
    func writeHead(_ head: ResponseHead)
    /// Bytes already in `framing`'s form (a shared event buffer, or a keepalive), without flushing.
    func writeShared(_ bytes: ByteBuffer)
    /// Bare SSE bytes that the transport frames itself (the prelude), without flushing.
    func writePayload(_ bytes: ByteBuffer)
    func flush()
    /// End the stream at once, dropping what is unsent (eviction): HTTP/1 closes the connection,
    /// HTTP/2 resets the stream.
    func abort()
    /// End the stream cleanly after what was written (shutdown, feed removed).
    func finish()
    /// A complete non-stream response instead of the stream (the feed went away while joining).
    func respond(_ head: ResponseHead, body: String)
}
