/// Percent-decoding (RFC 3986 §2.1), the one used everywhere: request path segments, query values and
/// the credentials of an upstream URL.
enum PercentDecoding {
    /// The bytes `text` stands for, or nil when a `%` is not followed by two hex digits. `plusAsSpace`
    /// reads `+` as a space, as `application/x-www-form-urlencoded` query strings do.
    static func bytes(_ text: Substring, plusAsSpace: Bool = false) -> [UInt8]? {
        let utf8 = text.utf8
        var decoded: [UInt8] = []
        decoded.reserveCapacity(utf8.count)
        var index = utf8.startIndex
        while index != utf8.endIndex {
            let byte = utf8[index]
            index = utf8.index(after: index)
            switch byte {
            case UInt8(ascii: "%"):
                guard index != utf8.endIndex, let high = Self.hexValue(utf8[index]) else { return nil }
                let next = utf8.index(after: index)
                guard next != utf8.endIndex, let low = Self.hexValue(utf8[next]) else { return nil }
                decoded.append(high << 4 | low)
                index = utf8.index(after: next)
            case UInt8(ascii: "+") where plusAsSpace:
                decoded.append(UInt8(ascii: " "))
            default:
                decoded.append(byte)
            }
        }
        return decoded
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
