import NIOCore

/// Writes Server-Sent Events so that a browser fires exactly the same event.
///
/// Round-trip law: for every ``ServerSentEvent`` that ``SSEParser`` can produce, parsing the bytes of
/// ``write(_:into:)`` (followed by nothing, or by more complete blocks) yields exactly that event again,
/// with the same `id`, `type` and `data`, including which of them are `nil`.
///
/// Every field line is written as `name: value` with one space after the colon, because the parser strips
/// exactly one: a value that itself starts with a space survives. An empty value is written as `name:`
/// without a trailing space.
///
/// Values the wire format cannot carry (only possible for hand-built events) are handled so that the output
/// is still well-formed and never smuggles an extra field or block into the stream:
/// - An `id` containing CR, LF or U+0000 is dropped: CR and LF would end the line early and a browser
///   ignores an `id` containing U+0000. An id-only event whose id is dropped writes nothing at all.
/// - A `type` containing CR or LF is dropped, so the event is delivered as `"message"`.
/// - CR and CRLF inside `data` become LF: each of them starts a new `data` line, which the client joins
///   with LF.
/// - For an event with `data == nil` the `type` is not written, since a browser never sees the type of a
///   block without data; an event with neither `id` nor `data` writes nothing.
///
/// Each call computes the exact encoded size first, reserves it once and copies every byte straight into
/// the buffer's storage: one capacity check per event instead of one per field fragment.
public enum SSESerializer {
    private static let lf = UInt8(ascii: "\n")
    private static let cr = UInt8(ascii: "\r")

    /// Writes `event` as one complete block, ending with the blank line that makes the client dispatch it.
    ///
    /// `id: X` when `id != nil` (`id:` for an empty id), `event: T` when `type` is non-empty, one `data:`
    /// line per line of `data` (split on CRLF, CR and LF), then a blank line. An id-only event
    /// (`data == nil`) is `id: X` followed by the blank line.
    public static func write(_ event: ServerSentEvent, into buffer: inout ByteBuffer) {
        let layout = Layout(event)
        guard layout.length > 0 else {
            return
        }
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: layout.length) { destination in
            var writer = Writer(destination, limit: layout.length)
            if layout.writesID, let id = event.id {
                Self.withUTF8(of: id) { writer.field("id: ", "id:", UnsafeRawBufferPointer($0)) }
            }
            if let data = event.data {
                if layout.writesType, let type = event.type {
                    Self.withUTF8(of: type) { writer.field("event: ", "event:", UnsafeRawBufferPointer($0)) }
                }
                Self.forEachLine(of: data) { writer.field("data: ", "data:", $0) }
            }
            writer.append(Self.lf)
            return writer.finish()
        }
    }

    /// The number of bytes ``write(_:into:)`` produces for `event`, so the caller can reserve capacity once.
    public static func encodedLength(of event: ServerSentEvent) -> Int {
        Layout(event).length
    }

    /// Writes `: text` once per line of `text` (split on CRLF, CR and LF), without a trailing blank line.
    ///
    /// A comment never reaches JavaScript; the gateway uses it for keep-alives. Because no blank line is
    /// written, it never completes a block, but a comment written in the middle of a block stays invisible.
    public static func writeComment(_ text: String, into buffer: inout ByteBuffer) {
        let length = LineLayout(text).encodedLength(prefixWithColon: 1)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { destination in
            var writer = Writer(destination, limit: length)
            Self.forEachLine(of: text) { writer.field(": ", ":", $0) }
            return writer.finish()
        }
    }

    /// Writes `retry: N` with `N` the milliseconds.
    ///
    /// A negative value writes nothing: clients ignore a `retry` that is not all digits, so the line could
    /// only waste bytes, and clamping to 0 would instead invite a reconnect storm.
    public static func writeRetry(milliseconds: Int64, into buffer: inout ByteBuffer) {
        guard milliseconds >= 0 else {
            return
        }
        buffer.writeStaticString("retry: ")
        buffer.writeString(String(milliseconds))
        buffer.writeInteger(Self.lf)
    }

    // MARK: - Layout

    /// Everything `write` decides before writing, computed once so `encodedLength` and `write` cannot disagree.
    private struct Layout {
        var writesID = false
        var writesType = false
        var length = 0

        init(_ event: ServerSentEvent) {
            if let id = event.id, SSESerializer.isRepresentableID(id) {
                self.writesID = true
                self.length += SSESerializer.fieldLength(prefixWithColon: 3, valueBytes: id.utf8.count)
            }
            guard let data = event.data else {
                // An id-only block still needs its blank line; a block with no field at all is not written.
                self.length += self.writesID ? 1 : 0
                return
            }
            if let type = event.type, SSESerializer.isRepresentableType(type) {
                self.writesType = true
                self.length += SSESerializer.fieldLength(prefixWithColon: 6, valueBytes: type.utf8.count)
            }
            self.length += LineLayout(data).encodedLength(prefixWithColon: 5) + 1
        }
    }

    /// How a text splits into lines on CRLF, CR and LF; `""` is one empty line.
    private struct LineLayout {
        var count = 0
        var emptyCount = 0
        /// UTF-8 bytes of all lines, without their line breaks.
        var contentBytes = 0

        init(_ text: String) {
            SSESerializer.forEachLine(of: text) { line in
                self.count += 1
                self.contentBytes += line.count
                if line.isEmpty {
                    self.emptyCount += 1
                }
            }
        }

        /// `name:` + LF for an empty line, `name: ` + line + LF otherwise.
        func encodedLength(prefixWithColon: Int) -> Int {
            self.count * (prefixWithColon + 1) + (self.count - self.emptyCount) + self.contentBytes
        }
    }

    private static func fieldLength(prefixWithColon: Int, valueBytes: Int) -> Int {
        valueBytes == 0 ? prefixWithColon + 1 : prefixWithColon + 1 + valueBytes + 1
    }

    // MARK: - Writing

    /// Copies into the writable region `write` reserved. Every copy is bounds-checked against the length
    /// the layout promised, so a disagreement between layout and writer traps instead of corrupting memory.
    private struct Writer {
        private let destination: UnsafeMutableRawBufferPointer
        private let limit: Int
        private var offset = 0

        init(_ destination: UnsafeMutableRawBufferPointer, limit: Int) {
            precondition(destination.count >= limit, "ByteBuffer reserved less than requested")
            self.destination = destination
            self.limit = limit
        }

        mutating func append(_ bytes: UnsafeRawBufferPointer) {
            precondition(self.offset + bytes.count <= self.limit, "SSESerializer layout mismatch")
            guard let source = bytes.baseAddress, let base = self.destination.baseAddress else {
                return
            }
            (base + self.offset).copyMemory(from: source, byteCount: bytes.count)
            self.offset += bytes.count
        }

        mutating func append(_ byte: UInt8) {
            precondition(self.offset < self.limit, "SSESerializer layout mismatch")
            self.destination[self.offset] = byte
            self.offset += 1
        }

        mutating func append(_ literal: StaticString) {
            self.append(UnsafeRawBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
        }

        /// `nameWithColon` alone for an empty value (no trailing space), else `nameColonSpace` + value; then LF.
        mutating func field(
            _ nameColonSpace: StaticString,
            _ nameWithColon: StaticString,
            _ value: UnsafeRawBufferPointer
        ) {
            if value.isEmpty {
                self.append(nameWithColon)
            } else {
                self.append(nameColonSpace)
                self.append(value)
            }
            self.append(SSESerializer.lf)
        }

        /// The number of bytes written, which must be exactly what the layout promised.
        func finish() -> Int {
            precondition(self.offset == self.limit, "SSESerializer layout mismatch")
            return self.offset
        }
    }

    // MARK: - Scanning

    /// Calls `body` with the UTF-8 bytes of each line of `text`, splitting on CRLF, CR and LF exactly as
    /// the parser does, so `""` is one empty line and a trailing line break yields a final empty line.
    private static func forEachLine(of text: String, _ body: (UnsafeRawBufferPointer) -> Void) {
        Self.withUTF8(of: text) { utf8 in
            let bytes = UnsafeRawBufferPointer(utf8)
            var start = 0
            while true {
                let end = SSEParser.lineBreakIndex(in: bytes, from: start)
                body(UnsafeRawBufferPointer(rebasing: bytes[start..<end]))
                guard end < bytes.count else {
                    return
                }
                start = end + 1
                if bytes[end] == Self.cr, start < bytes.count, bytes[start] == Self.lf {
                    start += 1
                }
            }
        }
    }

    private static func isRepresentableID(_ id: String) -> Bool {
        Self.withUTF8(of: id) { bytes in
            !bytes.contains { $0 == Self.cr || $0 == Self.lf || $0 == 0 }
        }
    }

    private static func isRepresentableType(_ type: String) -> Bool {
        !type.isEmpty
            && Self.withUTF8(of: type) { bytes in
                !bytes.contains { $0 == Self.cr || $0 == Self.lf }
            }
    }

    /// Native Swift strings are contiguous UTF-8, so this is a pointer access, not a copy; iterating
    /// `String.UTF8View` instead costs several times more per byte.
    private static func withUTF8<Result>(of text: String, _ body: (UnsafeBufferPointer<UInt8>) -> Result) -> Result {
        if let result = text.utf8.withContiguousStorageIfAvailable(body) {
            return result
        }
        var copy = text
        return copy.withUTF8(body)
    }
}
