import NIOCore
import SSE

/// How a client's connection frames the event stream.
public enum StreamFraming: Sendable {
    /// HTTP/1.1 chunked transfer: write `EncodedEvent.chunk`.
    case chunked
    /// Raw bytes (HTTP/1.0 close-delimited, or a framing layer below, such as HTTP/2): write `payload`.
    case raw
    /// A gzip client over HTTP/1.1 chunked transfer: shared buffers are `GzipFragment`s whose bytes are
    /// framed as chunks. A batch reaches it as one fragment, never as single events (`FeedShard`).
    case gzipChunked
    /// A gzip client whose connection frames the bytes itself (HTTP/1.0, HTTP/2): raw `GzipFragment`s.
    case gzipRaw

    /// True for the forms that take `GzipFragment`s.
    @inlinable
    var isGzip: Bool {
        switch self {
        case .chunked, .raw: return false
        case .gzipChunked, .gzipRaw: return true
        }
    }

    @inlinable
    func bytes(of event: EncodedEvent) -> ByteBuffer {
        switch self {
        case .chunked: return event.chunk
        case .raw: return event.payload
        case .gzipChunked, .gzipRaw:
            preconditionFailure("a gzip client takes fragments (GzipFragment), not single events")
        }
    }

    /// Frames bytes that are not shared events (keepalives, position marks, gap notices); for a gzip client
    /// a fragment of stored blocks, short bytes of one client that need no deflate state.
    func frame(_ payload: ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer {
        switch self {
        case .gzipChunked:
            return GzipFragment.stored(payload, chunked: true, allocator: allocator)
        case .gzipRaw:
            return GzipFragment.stored(payload, chunked: false, allocator: allocator)
        case .raw:
            return payload
        case .chunked:
            var buffer = allocator.buffer(capacity: payload.readableBytes + 12)
            buffer.writeString(String(payload.readableBytes, radix: 16))
            buffer.writeStaticString("\r\n")
            buffer.writeImmutableBuffer(payload)
            buffer.writeStaticString("\r\n")
            return buffer
        }
    }
}
