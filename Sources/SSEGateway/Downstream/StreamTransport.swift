import NIOCore

/// How one SSE response reaches its client: an HTTP/1 connection, an HTTP/2 stream, or a compressor in
/// front of either. Everything protocol-specific about a stream lives behind this; `StreamSession` does
/// the rest. The fan-out sees only its `SubscriberOutput` part. All calls happen on the transport's
/// event loop.
protocol StreamTransport: SubscriberOutput {
    /// The stream's response head; the transport adds its protocol's own headers (chunking, connection).
    func writeHead(_ head: ResponseHead)
    /// End the stream at once, dropping what is unsent (eviction): HTTP/1 closes the connection,
    /// HTTP/2 resets the stream.
    func abort()
    /// End the stream cleanly after what was written (shutdown, feed removed).
    func finish()
    /// A complete non-stream response instead of the stream (the feed went away while joining).
    func respond(_ head: ResponseHead, body: String)
    /// A whole poll response (SPEC §6a): the head with `Content-Length`, the body, and the end of the
    /// exchange; an HTTP/1.1 keep-alive connection then waits for its next request.
    func respondComplete(_ head: ResponseHead, body: ByteBuffer)
    /// Body bytes handed to the connection for this stream so far (after compression), for the access log.
    var bytesWritten: Int { get }
}

extension StreamTransport {
    /// Transports that never carry a poll (a compressor: a poll compresses its whole body itself).
    func respondComplete(_ head: ResponseHead, body: ByteBuffer) {
        self.respond(head, body: String(buffer: body))
    }
}
