import CZlib
import NIOCore

/// One client's gzip member (RFC 1952) around the fragments it was sent: the header before the first,
/// and at the end the final deflate block and the trailer, whose CRC-32 and length cover exactly the
/// fragments this client got (combined with `crc32_combine`, never recomputed over the bytes). A value.
struct GzipMember {
    /// Magic, deflate, no flags, no time, no extra flags, OS Unix.
    static let header: [UInt8] = [0x1F, 0x8B, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03]
    /// A final, empty block with fixed Huffman codes (what Z_FINISH of an empty state writes): the
    /// fragments before it are non-final and end on a byte boundary, so this ends the deflate stream.
    static let finalBlock: [UInt8] = [0x03, 0x00]

    private(set) var crc: UInt32 = 0
    /// The input length modulo 2^32 (ISIZE).
    private(set) var length: UInt32 = 0

    /// Accounts a fragment written to the client (its figures from `GzipFragment.open`).
    mutating func append(crc: UInt32, length: UInt32, combine: UInt32) {
        self.crc = CZlib_crc32_combine_op(self.crc, crc, combine)
        self.length &+= length
    }

    /// The final block and the trailer, little-endian CRC-32 and ISIZE.
    func end(allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 10)
        buffer.writeBytes(Self.finalBlock)
        buffer.writeInteger(self.crc, endianness: .little)
        buffer.writeInteger(self.length, endianness: .little)
        return buffer
    }
}
