/// The secret the admin listener demands (`admin.token_file`), read at load time.
///
/// It never prints itself (configs are compared and sometimes logged whole), and it is compared in
/// constant time, so the time an answer takes says nothing about how much of a guess was right.
public struct AdminToken: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    /// Fewer characters than this is a config error: a short token can be guessed over the network.
    static let minimumLength = 16

    private let bytes: [UInt8]

    /// A token of RFC 6750 `b64token` characters (what `openssl rand -hex 32` or `-base64 32` makes), so it
    /// travels unchanged in `Authorization: Bearer`, a cookie and a Basic password.
    init(_ text: String) throws(ConfigValueError) {
        guard text.utf8.count >= Self.minimumLength else {
            throw ConfigValueError(
                message:
                    "the token must be at least \(Self.minimumLength) characters (openssl rand -hex 32 makes one)"
            )
        }
        guard text.utf8.allSatisfy(Self.isTokenByte) else {
            throw ConfigValueError(
                message:
                    "the token must be one line of letters, digits and -._~+/= (no spaces; openssl rand -hex 32 "
                    + "makes one)"
            )
        }
        self.bytes = Array(text.utf8)
    }

    /// Whether `presented` is the token. The loop runs over `presented` (which the caller knows anyway)
    /// and never stops early, so its time does not depend on where the first difference is.
    func accepts(_ presented: some Collection<UInt8>) -> Bool {
        var difference: UInt8 = presented.count == self.bytes.count ? 0 : 1
        for (index, byte) in presented.enumerated() {
            difference |= byte ^ self.bytes[index % self.bytes.count]
        }
        return difference == 0
    }

    public var description: String { "AdminToken(redacted)" }
    public var debugDescription: String { self.description }

    /// RFC 6750 §2.1 `b64token`: ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" / "=".
    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "-._~+/=".utf8.contains(byte)
        }
    }
}
