import Foundation

/// An upstream `http(s)://host[:port]/path[?query]` URL, possibly with `{name}` placeholders
/// (in path and query) filled from a template feed's path.
public struct UpstreamURL: Sendable, Hashable, CustomStringConvertible {
    public var scheme: String
    public var host: String
    public var port: Int
    /// Path and query as written, e.g. `/rooms/{room}/events?x=1`.
    public var target: String
    /// `user:password@` if written, still percent-encoded; never logged or shown (see `basicAuthorization`).
    public var userInfo: String?

    public var isTLS: Bool { self.scheme == "https" }

    public init(parsing string: String) throws(PathTemplateError) {
        let schemeEnd = string.range(of: "://")
        guard let schemeEnd else { throw PathTemplateError(message: "URL must start with http:// or https://") }
        let scheme = string[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "http" || scheme == "https" else {
            throw PathTemplateError(message: "URL scheme must be http or https, not '\(scheme)'")
        }
        var rest = string[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        var authority = rest[..<authorityEnd]
        rest = rest[authorityEnd...]
        if let at = authority.lastIndex(of: "@") {
            let userInfo = String(authority[..<at])
            guard Self.decodedCredentials(userInfo) != nil else {
                throw PathTemplateError(message: "malformed %-escape in the URL's user or password (write '%' as %25)")
            }
            self.userInfo = userInfo
            authority = authority[authority.index(after: at)...]
        }
        var host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else {
                throw PathTemplateError(message: "unclosed '[' in URL host")
            }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") {
                portText = after.dropFirst()
            } else if !after.isEmpty {
                throw PathTemplateError(message: "unexpected text after ']' in URL host")
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        } else {
            host = authority
        }
        guard !host.isEmpty else { throw PathTemplateError(message: "URL has no host") }
        // `filled(with:)` only fills the target: a `{name}` in the host would be sent to DNS as written.
        guard !host.contains("{") && !host.contains("}") else {
            throw PathTemplateError(message: "a placeholder can only be in the URL's path or query, not in its host")
        }
        self.scheme = scheme
        self.host = String(host)
        if let portText {
            guard let port = Int(portText), (1...65535).contains(port) else {
                // Not echoed unless it is digits: an unescaped '/' in a password ends the authority early,
                // and what looks like a port is then the start of the password.
                let shown = portText.allSatisfy(\.isASCII) && portText.allSatisfy(\.isNumber) ? " '\(portText)'" : ""
                throw PathTemplateError(message: "bad port\(shown) in URL")
            }
            self.port = port
        } else {
            self.port = scheme == "https" ? 443 : 80
        }
        self.target = rest.isEmpty ? "/" : (rest.hasPrefix("?") ? "/" + rest : String(rest))
    }

    /// The URL for a concrete feed: placeholders replaced by percent-encoded values.
    public func filled(with values: [String: String]) -> UpstreamURL {
        guard !values.isEmpty else { return self }
        var copy = self
        for (name, value) in values {
            copy.target = copy.target.replacingOccurrences(of: "{\(name)}", with: Self.percentEncode(value))
        }
        return copy
    }

    /// Placeholder names used in the URL, for validating them against the path.
    public var placeholderNames: [String] {
        var names: [String] = []
        var rest = Substring(self.target)
        while let open = rest.firstIndex(of: "{"), let close = rest[open...].firstIndex(of: "}") {
            names.append(String(rest[rest.index(after: open)..<close]))
            rest = rest[rest.index(after: close)...]
        }
        return names
    }

    /// `Host` header value.
    public var hostHeader: String {
        let bracketed = self.host.contains(":") ? "[\(self.host)]" : self.host
        let defaultPort = self.isTLS ? 443 : 80
        return self.port == defaultPort ? bracketed : "\(bracketed):\(self.port)"
    }

    /// The URL without credentials and with query values hidden, safe for logs and `/api/feeds`
    /// (see `redactedTarget`). The request itself uses `target`.
    public var description: String { "\(self.scheme)://\(self.hostHeader)\(self.redactedTarget)" }

    static func percentEncode(_ value: String) -> String {
        var out = ""
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
                UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return out
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        self.count >= width ? self : String(repeating: "0", count: width - self.count) + self
    }
}
