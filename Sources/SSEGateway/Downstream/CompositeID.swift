/// The event id of a multi-feed stream (`/multi?feed=/a&feed=/b`): the last id of each requested feed, in
/// request order, so that one `Last-Event-ID` resumes every feed from its own replay buffer.
///
/// Written `m1:` (the format's version) followed by the ids separated by `,`. Inside an id, `%`, `,`,
/// controls, space, DEL and every non-ASCII byte are percent-encoded, so the whole id is printable ASCII:
/// it survives a browser's `lastEventId` and an HTTP header unchanged. An empty id means "no resume id for
/// this feed" (none seen yet, or the feed's last event reset it with an empty `id:`).
struct CompositeID: Equatable {
    static let prefix = "m1:"
    /// One per requested feed, in request order; "" for none.
    var ids: [String]

    init(ids: [String]) {
        self.ids = ids
    }

    init(feeds: Int) {
        self.ids = Array(repeating: "", count: feeds)
    }

    /// The encoded form, as sent in `id:` and read back from `Last-Event-ID`.
    var encoded: String {
        var bytes: [UInt8] = Array(Self.prefix.utf8)
        for (index, id) in self.ids.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            for byte in id.utf8 {
                if Self.needsEscape(byte) {
                    bytes.append(UInt8(ascii: "%"))
                    bytes.append(Self.hexDigit(byte >> 4))
                    bytes.append(Self.hexDigit(byte & 0xF))
                } else {
                    bytes.append(byte)
                }
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Reads an encoded id for `feeds` feeds. Nil when it is not one (another format or version, another
    /// number of feeds, a broken escape, bytes that are not UTF-8): the caller treats that as no resume id.
    static func decode(_ text: String, feeds: Int) -> CompositeID? {
        guard text.hasPrefix(Self.prefix), feeds > 0 else { return nil }
        let body = Array(text.utf8.dropFirst(Self.prefix.utf8.count))
        var ids: [String] = []
        var current: [UInt8] = []
        var index = 0
        while index < body.count {
            let byte = body[index]
            switch byte {
            case UInt8(ascii: ","):
                guard let id = String(validating: current, as: UTF8.self) else { return nil }
                ids.append(id)
                current.removeAll()
                index += 1
            case UInt8(ascii: "%"):
                guard index + 2 < body.count, let high = Self.hexValue(body[index + 1]),
                    let low = Self.hexValue(body[index + 2])
                else { return nil }
                current.append(high << 4 | low)
                index += 3
            default:
                guard !Self.needsEscape(byte) else { return nil }
                current.append(byte)
                index += 1
            }
        }
        guard let last = String(validating: current, as: UTF8.self) else { return nil }
        ids.append(last)
        guard ids.count == feeds else { return nil }
        return CompositeID(ids: ids)
    }

    /// The longest encoded composite id a stream may send: half of `limits.max_header_bytes`, so that the
    /// browser's `Last-Event-ID` with it, the request line and the other headers still fit in a request head.
    static func maxLength(maxHeaderBytes: Int) -> Int {
        maxHeaderBytes / 2
    }

    private static func needsEscape(_ byte: UInt8) -> Bool {
        byte <= 0x20 || byte >= 0x7F || byte == UInt8(ascii: "%") || byte == UInt8(ascii: ",")
    }

    private static func hexDigit(_ value: UInt8) -> UInt8 {
        value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "A") + value - 10
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        default: return nil
        }
    }
}
