import CZlib
import NIOCore

/// A piece of a gzip client's body that any gzip client can take at any point of its stream: raw deflate
/// bytes that start from nothing and end on a byte boundary (`FragmentDeflater`, or stored blocks).
///
/// A fragment travels through the fan-out as one `ByteBuffer`, like a plain event buffer, with the
/// figures the client's gzip trailer needs in front of the bytes to send:
///
///     [CRC-32 of the input: 4][input length mod 2^32: 4][crc32_combine operator of that length: 4][wire]
///
/// where `wire` is the deflate bytes, framed as an HTTP/1.1 chunk for `.gzipChunked`. `GzipTransport`
/// opens it (`open`), accounts the figures in its `GzipMember`, and writes a slice of `wire`: no copy.
/// The combine operator is computed once per fragment, so each client pays one multiplication per
/// fragment for its CRC, not a pass over the bytes.
enum GzipFragment {
    static let metadataSize = 12
    /// Room for the metadata and the longest chunk header (8 hex digits and CRLF) before the deflate bytes.
    private static let prefix = metadataSize + 10
    /// Uncompressed bytes per stored block (its length field has 16 bits).
    private static let storedBlockLimit = 65_535

    /// Deflates `payloads`, one after the other, into one fragment in `chunked` or raw form.
    static func deflated<Payloads: Collection<ByteBuffer>>(
        _ payloads: Payloads,
        chunked: Bool,
        deflater: FragmentDeflater,
        allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) -> ByteBuffer {
        let inputLength = payloads.reduce(0) { $0 + $1.readableBytes }
        var buffer = allocator.buffer(capacity: Self.prefix + deflater.bound(inputLength) + 2)
        buffer.writeRepeatingByte(0, count: Self.prefix)
        let (crc, length) = deflater.fragment(of: payloads, into: &buffer)
        return Self.finish(&buffer, crc: crc, length: length, chunked: chunked)
    }

    /// `payload` as stored (uncompressed) blocks: for short bytes of one client (a keepalive, a position
    /// mark, a notice), where deflate would save little and a stored block needs no deflate state at all.
    static func stored(
        _ payload: ByteBuffer,
        chunked: Bool,
        allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) -> ByteBuffer {
        let blocks = max(1, (payload.readableBytes + Self.storedBlockLimit - 1) / Self.storedBlockLimit)
        var buffer = allocator.buffer(capacity: Self.prefix + payload.readableBytes + 5 * blocks + 2)
        buffer.writeRepeatingByte(0, count: Self.prefix)
        var rest = payload
        var crc: UInt32 = 0
        repeat {
            let piece = rest.readSlice(length: min(rest.readableBytes, Self.storedBlockLimit))!
            // A non-final stored block: BFINAL 0, BTYPE 00, padded to the byte boundary; LEN and NLEN little-endian.
            buffer.writeInteger(UInt8(0))
            buffer.writeInteger(UInt16(piece.readableBytes), endianness: .little)
            buffer.writeInteger(~UInt16(piece.readableBytes), endianness: .little)
            buffer.writeImmutableBuffer(piece)
            crc = piece.withUnsafeReadableBytes { raw in
                let bytes = raw.bindMemory(to: UInt8.self)
                return CZlib_crc32(crc, bytes.baseAddress, UInt32(bytes.count))
            }
        } while rest.readableBytes > 0
        return Self.finish(&buffer, crc: crc, length: payload.readableBytes, chunked: chunked)
    }

    /// Input bytes per fragment of a batch or a replay (an event is never split, so a fragment may hold
    /// one longer event): about what the plain path lets into a channel before it turns unwritable (the
    /// 64 KiB high watermark). A larger fragment would go into the channel whole, past `max_queue` and
    /// `max_lag`, which only see what waits in the client's queue.
    static let inputLimit = 64 * 1024

    /// `events` as fragments of about `limit` input bytes each, in order, each with the number of events
    /// it carries and when the first of them arrived (for `max_lag`).
    static func pieces<Events: Collection<EncodedEvent>>(
        _ events: Events,
        chunked: Bool,
        deflater: FragmentDeflater,
        limit: Int = Self.inputLimit
    ) -> [GzipPiece] {
        var pieces: [GzipPiece] = []
        var start = events.startIndex
        while start != events.endIndex {
            var end = start
            var bytes = 0
            repeat {
                bytes += events[end].payload.readableBytes
                events.formIndex(after: &end)
            } while end != events.endIndex && bytes < limit
            let group = events[start..<end]
            pieces.append(
                GzipPiece(
                    fragment: Self.deflated(group.lazy.map(\.payload), chunked: chunked, deflater: deflater),
                    events: group.count,
                    producedAt: events[start].receivedAt
                )
            )
            start = end
        }
        return pieces
    }

    /// The figures of a fragment and the bytes to send.
    static func open(_ fragment: ByteBuffer) -> (crc: UInt32, length: UInt32, combine: UInt32, wire: ByteBuffer) {
        let start = fragment.readerIndex
        guard let crc = fragment.getInteger(at: start, as: UInt32.self),
            let length = fragment.getInteger(at: start + 4, as: UInt32.self),
            let combine = fragment.getInteger(at: start + 8, as: UInt32.self),
            let wire = fragment.getSlice(
                at: start + Self.metadataSize,
                length: fragment.readableBytes - Self.metadataSize
            )
        else {
            preconditionFailure("not a gzip fragment: \(fragment.readableBytes) bytes")
        }
        return (crc, length, combine, wire)
    }

    /// Writes the chunk framing (when `chunked`) and the metadata in front of the deflate bytes, which
    /// start at `prefix`, and moves the reader index to the metadata.
    private static func finish(_ buffer: inout ByteBuffer, crc: UInt32, length: Int, chunked: Bool) -> ByteBuffer {
        var start = Self.prefix
        if chunked {
            let header = String(buffer.writerIndex - Self.prefix, radix: 16) + "\r\n"
            start -= header.utf8.count
            buffer.setString(header, at: start)
            buffer.writeStaticString("\r\n")
        }
        start -= Self.metadataSize
        buffer.setInteger(crc, at: start)
        buffer.setInteger(UInt32(truncatingIfNeeded: length), at: start + 4)
        buffer.setInteger(CZlib_crc32_combine_gen(length), at: start + 8)
        buffer.moveReaderIndex(to: start)
        return buffer
    }
}
