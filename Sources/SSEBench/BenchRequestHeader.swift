/// A header the bench sends on every request (`--header 'Authorization: Bearer TOKEN'`), in the
/// HTTP/1.1 request head and, lowercased, in the HTTP/2 HEADERS.
public struct BenchRequestHeader: Sendable, Equatable {
    public var name: String
    public var value: String

    /// Headers that the bench sets itself or that frame the connection: the request would no longer be
    /// the one the bench reads (and HTTP/2 forbids the connection-specific ones, RFC 9113 §8.2.2).
    private static let refused: Set<String> = [
        "host", "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te",
        "content-length",
    ]

    /// Parses `Name: value`; the error names what is wrong, never the value (it is often a credential).
    public init(parsing text: String) throws(BenchError) {
        guard let colon = text.firstIndex(of: ":") else {
            throw BenchError.usage("bad --header: expected 'Name: value'")
        }
        let name = String(text[..<colon])
        let value = String(text[text.index(after: colon)...].drop { $0 == " " || $0 == "\t" })
        guard !name.isEmpty, name.utf8.allSatisfy(Self.isTokenCharacter) else {
            throw BenchError.usage("bad --header: the name must be a non-empty token (RFC 9110 §5.1)")
        }
        guard !Self.refused.contains(name.lowercased()) else {
            throw BenchError.usage("bad --header: the bench sets or forbids '\(name)' itself")
        }
        guard !value.utf8.contains(where: { $0 == 0 || $0 == 0x0A || $0 == 0x0D }) else {
            throw BenchError.usage("bad --header '\(name)': the value may not contain CR, LF or NUL")
        }
        self.name = name
        self.value = value
    }

    /// tchar of RFC 9110 §5.6.2.
    private static func isTokenCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }
}
