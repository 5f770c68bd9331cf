/// The URL a bench run connects to: `http(s)://host[:port][/path][?query]`, IPv6 hosts in brackets.
///
/// The bench's own, smaller than the gateway's `UpstreamURL` (which it must not depend on): no
/// placeholders, and `user:password@` is skipped, as the bench sends no credentials.
struct BenchURL: Sendable, CustomStringConvertible {
    var scheme: String
    var host: String
    var port: Int
    /// Path and query, as sent in the request line or `:path`.
    var target: String

    var isTLS: Bool { self.scheme == "https" }

    /// `Host` / `:authority`: the host (bracketed when IPv6), with the port unless it is the scheme's default.
    var hostHeader: String {
        let host = self.host.contains(":") ? "[\(self.host)]" : self.host
        return self.port == (self.isTLS ? 443 : 80) ? host : "\(host):\(self.port)"
    }

    /// For messages: without the query, where a URL may carry a token.
    var description: String {
        "\(self.scheme)://\(self.hostHeader)\(self.target.prefix { $0 != "?" })"
    }

    /// Parses `--url`; the error text says what is wrong.
    init(parsing text: String) throws(BenchError) {
        guard let separator = text.firstRange(of: "://") else {
            throw BenchError.usage("bad --url: URL must start with http:// or https://")
        }
        self.scheme = text[..<separator.lowerBound].lowercased()
        guard self.scheme == "http" || self.scheme == "https" else {
            throw BenchError.usage("bad --url: URL scheme must be http or https, not '\(self.scheme)'")
        }
        let afterScheme = text[separator.upperBound...]
        let targetStart = afterScheme.firstIndex { $0 == "/" || $0 == "?" } ?? afterScheme.endIndex
        let rest = afterScheme[targetStart...]
        self.target = rest.hasPrefix("/") ? String(rest) : "/" + rest
        var authority = afterScheme[..<targetStart]
        if let at = authority.lastIndex(of: "@") {
            authority = authority[authority.index(after: at)...]
        }
        let (host, port) = try Self.hostAndPort(authority)
        guard !host.isEmpty else { throw BenchError.usage("bad --url: URL has no host") }
        self.host = String(host)
        if let port {
            guard let number = Int(port), (1...65535).contains(number) else {
                // Echoed only when it is digits: it may be the start of a password with an unescaped '/'.
                let shown = port.allSatisfy { $0.isASCII && $0.isNumber } ? " '\(port)'" : ""
                throw BenchError.usage("bad --url: bad port\(shown) in URL")
            }
            self.port = number
        } else {
            self.port = self.scheme == "https" ? 443 : 80
        }
    }

    /// Splits `host`, `host:port`, `[v6]` or `[v6]:port`.
    private static func hostAndPort(_ authority: Substring) throws(BenchError) -> (Substring, Substring?) {
        guard authority.hasPrefix("[") else {
            guard let colon = authority.lastIndex(of: ":") else { return (authority, nil) }
            return (authority[..<colon], authority[authority.index(after: colon)...])
        }
        guard let close = authority.firstIndex(of: "]") else {
            throw BenchError.usage("bad --url: unclosed '[' in URL host")
        }
        let host = authority[authority.index(after: authority.startIndex)..<close]
        let after = authority[authority.index(after: close)...]
        if after.isEmpty { return (host, nil) }
        guard after.hasPrefix(":") else { throw BenchError.usage("bad --url: unexpected text after ']' in URL host") }
        return (host, after.dropFirst())
    }

    /// Adds `transport=poll` to the query, unless it is there already.
    mutating func addPollTransport() {
        let query = self.target.drop { $0 != "?" }.dropFirst()
        guard !query.split(separator: "&").contains("transport=poll") else { return }
        self.target += query.isEmpty ? (self.target.hasSuffix("?") ? "" : "?") + "transport=poll" : "&transport=poll"
    }

    /// The TLS server name (SNI) for the host: a name only, never an IP address literal (RFC 6066 §3).
    var serverName: String? {
        if self.host.contains(":") { return nil }
        let isIPv4 = self.host.split(separator: ".").count == 4 && self.host.allSatisfy { $0.isNumber || $0 == "." }
        return isIPv4 ? nil : self.host
    }
}
