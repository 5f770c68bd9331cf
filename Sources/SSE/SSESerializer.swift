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
public enum SSESerializer {
    private static let lf = UInt8(ascii: "\n")
    private static let cr = UInt8(ascii: "\r")

    /// Writes `event` as one complete block, ending with the blank line that makes the client dispatch it.
    ///
    /// `id: X` when `id != nil` (`id:` for an empty id), `event: T` when `type` is non-empty, one `data:`
    /// line per line of `data` (split on CRLF, CR and LF), then a blank line. An id-only event
    /// (`data == nil`) is `id: X` followed by the blank line.
    public static func write(_ event: ServerSentEvent, into buffer: inout ByteBuffer) {
        let length = Self.encodedLength(of: event)
        guard length > 0 else {
            return
        }
        buffer.reserveCapacity(minimumWritableBytes: length)

        if let id = event.id, Self.isRepresentableID(id) {
            Self.writeField("id:", id, into: &buffer)
        }
        if let data = event.data {
            if let type = event.type, Self.isRepresentableType(type) {
                Self.writeField("event:", type, into: &buffer)
            }
            Self.forEachLine(of: data) { line in
                Self.writeField("data:", line, into: &buffer)
            }
        }
        buffer.writeInteger(Self.lf)
    }

    /// The number of bytes ``write(_:into:)`` produces for `event`, so the caller can reserve capacity once.
    public static func encodedLength(of event: ServerSentEvent) -> Int {
        var length = 0
        var hasField = false
        if let id = event.id, Self.isRepresentableID(id) {
            length += Self.fieldLength(nameWithColon: 3, valueBytes: id.utf8.count)
            hasField = true
        }
        if let data = event.data {
            if let type = event.type, Self.isRepresentableType(type) {
                length += Self.fieldLength(nameWithColon: 6, valueBytes: type.utf8.count)
            }
            Self.forEachLine(of: data) { line in
                length += Self.fieldLength(nameWithColon: 5, valueBytes: line.count)
            }
            hasField = true
        }
        return hasField ? length + 1 : 0
    }

    /// Writes `: text` once per line of `text` (split on CRLF, CR and LF), without a trailing blank line.
    ///
    /// A comment never reaches JavaScript; the gateway uses it for keep-alives. Because no blank line is
    /// written, it must not be written in the middle of a block that is supposed to stay open.
    public static func writeComment(_ text: String, into buffer: inout ByteBuffer) {
        var length = 0
        Self.forEachLine(of: text) { line in
            length += Self.fieldLength(nameWithColon: 1, valueBytes: line.count)
        }
        buffer.reserveCapacity(minimumWritableBytes: length)
        Self.forEachLine(of: text) { line in
            Self.writeField(":", line, into: &buffer)
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

    // MARK: - Helpers

    /// `name:` alone for an empty value, else `name: value`, then LF.
    private static func fieldLength(nameWithColon: Int, valueBytes: Int) -> Int {
        valueBytes == 0 ? nameWithColon + 1 : nameWithColon + 1 + valueBytes + 1
    }

    private static func writeField(_ nameWithColon: StaticString, _ value: String, into buffer: inout ByteBuffer) {
        buffer.writeStaticString(nameWithColon)
        if !value.isEmpty {
            buffer.writeInteger(UInt8(ascii: " "))
            buffer.writeString(value)
        }
        buffer.writeInteger(Self.lf)
    }

    private static func writeField(
        _ nameWithColon: StaticString,
        _ value: UnsafeRawBufferPointer,
        into buffer: inout ByteBuffer
    ) {
        buffer.writeStaticString(nameWithColon)
        if !value.isEmpty {
            buffer.writeInteger(UInt8(ascii: " "))
            buffer.writeBytes(value)
        }
        buffer.writeInteger(Self.lf)
    }

    /// Calls `body` with the UTF-8 bytes of each line of `text`, splitting on CRLF, CR and LF exactly as
    /// the parser does, so `""` is one empty line and a trailing line break yields a final empty line.
    private static func forEachLine(of text: String, _ body: (UnsafeRawBufferPointer) -> Void) {
        var text = text
        text.withUTF8 { utf8 in
            let bytes = UnsafeRawBufferPointer(utf8)
            let count = bytes.count
            var start = 0
            var index = 0
            while index < count {
                let byte = bytes[index]
                if byte == Self.lf || byte == Self.cr {
                    body(UnsafeRawBufferPointer(rebasing: bytes[start..<index]))
                    if byte == Self.cr, index + 1 < count, bytes[index + 1] == Self.lf {
                        index += 1
                    }
                    index += 1
                    start = index
                } else {
                    index += 1
                }
            }
            body(UnsafeRawBufferPointer(rebasing: bytes[start..<count]))
        }
    }

    private static func isRepresentableID(_ id: String) -> Bool {
        !id.utf8.contains { $0 == Self.cr || $0 == Self.lf || $0 == 0 }
    }

    private static func isRepresentableType(_ type: String) -> Bool {
        !type.isEmpty && !type.utf8.contains { $0 == Self.cr || $0 == Self.lf }
    }
}
