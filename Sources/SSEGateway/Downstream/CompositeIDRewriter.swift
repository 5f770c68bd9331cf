import NIOCore

/// The id logic of a multi-feed response, without I/O: it follows each feed's last id and turns a feed's
/// encoded event (a shared buffer) into the same event carrying the composite id instead of its own. The
/// rest of the event stays a slice of the shared buffer (encode-once); only the new `id:` line is written.
///
/// Invariant: `ids.encoded` never grows past `maxLength`; an id that would push it over is not taken (a
/// resume from the last composite that fit may repeat events of that feed, never skip one).
struct CompositeIDRewriter {
    /// Each feed's last id sent to the client (request order).
    private(set) var ids: CompositeID
    /// The longest composite id the response may carry (`CompositeID.maxLength`).
    let maxLength: Int

    init(ids: CompositeID, maxLength: Int) {
        self.ids = ids
        self.maxLength = maxLength
    }

    /// Sets every feed's id at once (an id-only start); false, and nothing changes, when it does not fit.
    mutating func replaceAll(_ ids: CompositeID) -> Bool {
        guard ids.encoded.utf8.count <= self.maxLength else { return false }
        self.ids = ids
        return true
    }

    /// `bytes` (one buffer of feed `index`, framed as `framing`) as the client gets it: nil when it carries no
    /// `id:` line first (a notice, a keepalive, an event without id), to be written unchanged; else the new
    /// head (chunk size line when chunked, `id: <composite>`) and the rest of the shared buffer after its id
    /// line.
    mutating func rewrite(
        _ bytes: ByteBuffer,
        from index: Int,
        framing: StreamFraming
    ) -> (head: ByteBuffer, rest: ByteBuffer)? {
        var payloadStart = bytes.readerIndex
        if framing == .chunked {
            guard let lineEnd = Self.firstIndex(of: UInt8(ascii: "\n"), in: bytes, from: payloadStart, limit: 20)
            else { return nil }
            payloadStart = lineEnd + 1
        }
        guard bytes.getString(at: payloadStart, length: 3) == "id:",
            let idEnd = Self.firstIndex(of: UInt8(ascii: "\n"), in: bytes, from: payloadStart, limit: Int.max)
        else { return nil }
        var valueStart = payloadStart + 3
        if bytes.getInteger(at: valueStart, as: UInt8.self) == UInt8(ascii: " ") { valueStart += 1 }
        let id = bytes.getString(at: valueStart, length: idEnd - valueStart) ?? ""
        let previous = self.ids.ids[index]
        self.ids.ids[index] = id
        var composite = self.ids.encoded
        if composite.utf8.count > self.maxLength {
            // Over the bound a browser could not send it back: keep the last composite that fit.
            self.ids.ids[index] = previous
            composite = self.ids.encoded
        }
        let restStart = idEnd + 1
        let rest = bytes.getSlice(at: restStart, length: bytes.writerIndex - restStart)!
        var head = ByteBuffer()
        let idLineLength = 5 + composite.utf8.count
        if framing == .chunked {
            // The rest ends with the chunk's CRLF; the new chunk holds the id line and the rest of the event.
            let length = idLineLength + rest.readableBytes - 2
            head.writeString(String(length, radix: 16))
            head.writeStaticString("\r\n")
        }
        head.writeStaticString("id: ")
        head.writeString(composite)
        head.writeStaticString("\n")
        return (head, rest)
    }

    private static func firstIndex(of byte: UInt8, in buffer: ByteBuffer, from start: Int, limit: Int) -> Int? {
        let end = limit < buffer.writerIndex - start ? start + limit : buffer.writerIndex
        guard start < end else { return nil }
        return buffer.withUnsafeReadableBytes { raw -> Int? in
            let base = buffer.readerIndex
            for offset in (start - base)..<(end - base) where raw[offset] == byte { return base + offset }
            return nil
        }
    }
}
