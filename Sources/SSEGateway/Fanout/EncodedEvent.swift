import NIOCore
import SSE

/// An event as the fan-out carries it: serialized once, then the same bytes are written to every client.
///
/// `chunk` holds the event framed as one HTTP/1.1 chunk (`<hex>\r\n<event>\r\n`); `payload` is a slice of
/// the same storage without the framing, for HTTP/1.0, HTTP/2 and compressors. Both share one allocation.
public struct EncodedEvent: Sendable {
    /// Position in the feed, strictly increasing by one per event (replay and hand-over use it).
    public let sequence: Int64
    /// The event's `id` field (nil when it had none): all replay needs. The rest of the event lives only
    /// in the encoded bytes, so the ring holds one copy of each event.
    public let id: String?
    /// The event's `event:` type; nil for `message` (untyped, or an empty `event:` field). Kept beside the
    /// bytes so that a filtered client (`EventFilter`) skips an event without parsing it.
    public let eventType: String?
    /// False for an id-only block (an `id:` without data), which every filtered client still gets.
    public let hasData: Bool
    /// When the gateway received it from upstream: the clock for `max_age` and `max_lag`.
    public let receivedAt: NIODeadline
    public let chunk: ByteBuffer
    public let payload: ByteBuffer

    public init(sequence: Int64, event: ServerSentEvent, receivedAt: NIODeadline, allocator: ByteBufferAllocator) {
        self.sequence = sequence
        self.id = event.id
        self.eventType = event.type?.isEmpty == false ? event.type : nil
        self.hasData = event.data != nil
        self.receivedAt = receivedAt
        let length = SSESerializer.encodedLength(of: event)
        let hex = String(length, radix: 16)
        var buffer = allocator.buffer(capacity: hex.utf8.count + length + 4)
        buffer.writeString(hex)
        buffer.writeStaticString("\r\n")
        let payloadStart = buffer.writerIndex
        SSESerializer.write(event, into: &buffer)
        buffer.writeStaticString("\r\n")
        self.payload = buffer.getSlice(at: payloadStart, length: length)!
        self.chunk = buffer
    }

    private init(
        sequence: Int64,
        id: String?,
        eventType: String?,
        hasData: Bool,
        receivedAt: NIODeadline,
        chunk: ByteBuffer,
        payload: ByteBuffer
    ) {
        self.sequence = sequence
        self.id = id
        self.eventType = eventType
        self.hasData = hasData
        self.receivedAt = receivedAt
        self.chunk = chunk
        self.payload = payload
    }

    /// The same event in a storage of its own, for the clients of another event loop. Every write of a
    /// shared buffer retains and releases its storage; with one storage per loop those reference counts
    /// stay in one core's cache instead of bouncing between cores on every delivery.
    public func copy(allocator: ByteBufferAllocator) -> EncodedEvent {
        var chunk = allocator.buffer(capacity: self.chunk.readableBytes)
        chunk.writeImmutableBuffer(self.chunk)
        let payloadOffset = self.chunk.readableBytes - self.payload.readableBytes - 2
        let payload = chunk.getSlice(at: chunk.readerIndex + payloadOffset, length: self.payload.readableBytes)!
        return EncodedEvent(
            sequence: self.sequence,
            id: self.id,
            eventType: self.eventType,
            hasData: self.hasData,
            receivedAt: self.receivedAt,
            chunk: chunk,
            payload: payload
        )
    }

    /// Bytes this event costs a client's queue (what goes on the wire).
    @inlinable
    public var size: Int { self.payload.readableBytes }

    /// Memory this event holds in the replay ring: the whole allocation, framing and slack included.
    public var storageSize: Int { self.chunk.capacity }
}
