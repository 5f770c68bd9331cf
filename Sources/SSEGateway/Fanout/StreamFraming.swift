import NIOCore
import SSE

/// How a client's connection frames the event stream.
public enum StreamFraming: Sendable {
    /// HTTP/1.1 chunked transfer: write `EncodedEvent.chunk`.
    case chunked
    /// Raw bytes (HTTP/1.0 close-delimited, or a framing layer below, such as HTTP/2): write `payload`.
    case raw

    @inlinable
    func bytes(of event: EncodedEvent) -> ByteBuffer {
        switch self {
        case .chunked: return event.chunk
        case .raw: return event.payload
        }
    }

    /// Frames bytes that are not shared events (the stream prelude, keepalives, gap notices).
    func frame(_ payload: ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer {
        switch self {
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
