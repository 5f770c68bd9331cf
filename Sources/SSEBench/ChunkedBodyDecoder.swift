import NIOCore

/// Undoes HTTP/1.1 chunked transfer coding (RFC 9112 §7.1) for the load client without an HTTP parser:
/// hex sizes with optional `;extensions`, the last chunk and trailers, input split at any byte. Chunk data
/// comes out as slices of the input buffers (no copy). Only the framing is walked byte by byte.
public struct ChunkedBodyDecoder: Sendable {
    public struct MalformedChunk: Error, Equatable, CustomStringConvertible {
        public var description: String
    }

    private enum State: Sendable, Equatable {
        /// Reading the hex size; `hasDigits` once a digit was read. At most 15 significant digits (leading
        /// zeros are free), so the size fits in an Int.
        case size(value: Int, hasDigits: Bool)
        /// After the size: `;extensions` or whitespace, skipped up to the CR.
        case sizeExtension(value: Int)
        /// The size line's CR was read; its LF comes next.
        case sizeLineFeed(value: Int)
        case data(remaining: Int)
        case dataCarriageReturn
        case dataLineFeed
        /// After the last chunk: at the start of a trailer line or of the final empty line.
        case trailerLineStart
        case trailerLine
        case trailerLineFeed
        case finalLineFeed
        case finished
    }

    private var state = State.size(value: 0, hasDigits: false)

    public init() {}

    /// The last chunk and the trailers have been read: the response is complete.
    public var isFinished: Bool { self.state == .finished }

    /// Consumes all of `input`, handing each piece of chunk data to `body` as a slice of `input`.
    /// Bytes after the end of the message are left unread in `input`. Throws `MalformedChunk` for bad
    /// framing, or what `body` throws.
    public mutating func decode(_ input: inout ByteBuffer, body: (ByteBuffer) throws -> Void) throws {
        while input.readableBytes > 0 {
            if case .data(let remaining) = self.state {
                let count = min(remaining, input.readableBytes)
                try body(input.readSlice(length: count)!)
                self.state = remaining == count ? .dataCarriageReturn : .data(remaining: remaining - count)
                continue
            }
            if self.state == .finished { return }
            try self.step(input.readInteger(as: UInt8.self)!)
        }
    }

    /// One framing byte.
    private mutating func step(_ byte: UInt8) throws(MalformedChunk) {
        switch self.state {
        case .size(let value, let hasDigits):
            if let digit = Self.hexValue(byte) {
                // At most 14 significant digits so far, so a 15th fits; leading zeros leave the value 0.
                guard value < 1 << 56 else { throw MalformedChunk(description: "chunk size too large") }
                self.state = .size(value: value << 4 | digit, hasDigits: true)
            } else if !hasDigits {
                throw MalformedChunk(description: "chunk size is not hex (byte \(byte))")
            } else {
                try self.afterSize(byte, value: value)
            }
        case .sizeExtension(let value):
            if byte == UInt8(ascii: "\r") { self.state = .sizeLineFeed(value: value) }
        case .sizeLineFeed(let value):
            try Self.expect(byte, UInt8(ascii: "\n"), "LF after the chunk size line")
            self.state = value == 0 ? .trailerLineStart : .data(remaining: value)
        case .dataCarriageReturn:
            try Self.expect(byte, UInt8(ascii: "\r"), "CR after chunk data")
            self.state = .dataLineFeed
        case .dataLineFeed:
            try Self.expect(byte, UInt8(ascii: "\n"), "LF after chunk data")
            self.state = .size(value: 0, hasDigits: false)
        case .trailerLineStart:
            self.state = byte == UInt8(ascii: "\r") ? .finalLineFeed : .trailerLine
        case .trailerLine:
            if byte == UInt8(ascii: "\r") { self.state = .trailerLineFeed }
        case .trailerLineFeed:
            try Self.expect(byte, UInt8(ascii: "\n"), "LF after a trailer line")
            self.state = .trailerLineStart
        case .finalLineFeed:
            try Self.expect(byte, UInt8(ascii: "\n"), "LF after the trailers")
            self.state = .finished
        case .data, .finished:
            preconditionFailure("data and the end are handled by decode")
        }
    }

    private mutating func afterSize(_ byte: UInt8, value: Int) throws(MalformedChunk) {
        switch byte {
        case UInt8(ascii: "\r"): self.state = .sizeLineFeed(value: value)
        case UInt8(ascii: ";"), UInt8(ascii: " "), UInt8(ascii: "\t"): self.state = .sizeExtension(value: value)
        default: throw MalformedChunk(description: "unexpected byte \(byte) after the chunk size")
        }
    }

    private static func expect(_ byte: UInt8, _ wanted: UInt8, _ what: String) throws(MalformedChunk) {
        guard byte == wanted else { throw MalformedChunk(description: "expected \(what), got byte \(byte)") }
    }

    private static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return Int(byte &- UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return Int(byte &- UInt8(ascii: "a") &+ 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return Int(byte &- UInt8(ascii: "A") &+ 10)
        default: return nil
        }
    }
}
