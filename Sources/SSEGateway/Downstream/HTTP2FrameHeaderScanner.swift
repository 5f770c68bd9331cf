import NIOCore

/// Finds the 9-byte frame headers (RFC 9113 §4.1) in one direction of an HTTP/2 connection's bytes,
/// however the bytes are split into reads or writes, without looking into any payload. A plain value:
/// `scan` reports each header as soon as its ninth byte is seen (the payload may still be on its way).
///
/// Invariant: `skip` bytes (the rest of the client preface, or of the current frame's payload) come
/// before the next header; `partial` holds the first bytes of a header split across buffers (< 9).
struct HTTP2FrameHeaderScanner {
    struct Header: Equatable {
        var length: Int
        var type: UInt8
        var flags: UInt8
        /// The stream identifier without the reserved bit.
        var streamID: UInt32
    }

    /// Frame types by their RFC 9113 §6 codes.
    enum FrameType {
        static let data: UInt8 = 0x0
        static let headers: UInt8 = 0x1
        static let rstStream: UInt8 = 0x3
        static let goAway: UInt8 = 0x7
        static let windowUpdate: UInt8 = 0x8
        /// Types above this are extensions (ALTSVC 0xa and ORIGIN 0xc among them).
        static let continuation: UInt8 = 0x9
    }

    /// The client's connection preface, `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`, before its first frame.
    static let clientPrefaceLength = 24

    private var skip: Int
    private var partial: [UInt8] = []

    /// `afterClientPreface`: the stream starts with the client preface (the inbound side of a server).
    init(afterClientPreface: Bool) {
        self.skip = afterClientPreface ? Self.clientPrefaceLength : 0
    }

    /// Reports every frame header that completes in `buffer`, in order; stops early (and stays where it
    /// stopped) when `onHeader` returns false.
    mutating func scan(_ buffer: ByteBuffer, _ onHeader: (Header) -> Bool) {
        var index = buffer.readerIndex
        let end = buffer.writerIndex
        while index < end {
            if self.skip > 0 {
                let skipped = min(self.skip, end - index)
                self.skip -= skipped
                index += skipped
                continue
            }
            let header: Header
            if self.partial.isEmpty && end - index >= 9 {
                // The common case reads the header in place (no copy).
                let high = Int(buffer.getInteger(at: index, as: UInt8.self)!)
                let low = Int(buffer.getInteger(at: index + 1, as: UInt16.self)!)
                header = Header(
                    length: high << 16 | low,
                    type: buffer.getInteger(at: index + 3, as: UInt8.self)!,
                    flags: buffer.getInteger(at: index + 4, as: UInt8.self)!,
                    streamID: buffer.getInteger(at: index + 5, as: UInt32.self)! & 0x7FFF_FFFF
                )
                index += 9
            } else {
                let wanted = min(9 - self.partial.count, end - index)
                self.partial += buffer.getBytes(at: index, length: wanted)!
                index += wanted
                guard self.partial.count == 9 else { return }
                header = Self.header(self.partial)
                self.partial.removeAll(keepingCapacity: true)
            }
            self.skip = header.length
            if !onHeader(header) { return }
        }
    }

    private static func header(_ bytes: [UInt8]) -> Header {
        let length = Int(bytes[0]) << 16 | Int(bytes[1]) << 8 | Int(bytes[2])
        let streamID =
            (UInt32(bytes[5]) << 24 | UInt32(bytes[6]) << 16 | UInt32(bytes[7]) << 8 | UInt32(bytes[8])) & 0x7FFF_FFFF
        return Header(length: length, type: bytes[3], flags: bytes[4], streamID: streamID)
    }
}
