import Foundation

/// A downstream path such as `/prices` or `/rooms/{room}`: literal segments and `{name}` placeholders,
/// each placeholder matching exactly one non-empty path segment.
public struct PathTemplate: Sendable, Hashable, CustomStringConvertible {
    public enum Segment: Sendable, Hashable {
        case literal(String)
        case parameter(String)
    }

    public let segments: [Segment]
    /// The path as written in the config.
    public let description: String

    /// True when the path has at least one `{name}` placeholder.
    public var isTemplate: Bool {
        self.segments.contains { if case .parameter = $0 { return true } else { return false } }
    }

    public var parameterNames: [String] {
        self.segments.compactMap { if case .parameter(let name) = $0 { return name } else { return nil } }
    }

    /// Parses a path as written in the config; the error text names what is wrong.
    public init(parsing path: String) throws(PathTemplateError) {
        guard path.hasPrefix("/") else { throw PathTemplateError(message: "path must start with '/'") }
        var segments: [Segment] = []
        var names = Set<String>()
        for raw in path.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
            if raw.hasPrefix("{") && raw.hasSuffix("}") && raw.count > 2 {
                let name = String(raw.dropFirst().dropLast())
                guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) else {
                    throw PathTemplateError(message: "bad placeholder name '{\(name)}'")
                }
                guard names.insert(name).inserted else {
                    throw PathTemplateError(message: "placeholder '{\(name)}' appears twice")
                }
                segments.append(.parameter(name))
            } else if raw.contains("{") || raw.contains("}") {
                throw PathTemplateError(message: "a placeholder must be a whole path segment, as in /rooms/{room}")
            } else if raw.contains("?") || raw.contains("#") {
                throw PathTemplateError(message: "path must not contain '?' or '#'")
            } else {
                segments.append(.literal(String(raw)))
            }
        }
        self.segments = segments
        self.description = path
    }

    /// Matches a request path (without query); returns the placeholder values, percent-decoded, or nil
    /// when it does not match.
    public func match(_ path: Substring) -> [String: String]? {
        guard path.hasPrefix("/") else { return nil }
        var values: [String: String] = [:]
        var index = 0
        for part in path.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
            guard index < self.segments.count else { return nil }
            switch self.segments[index] {
            case .literal(let literal):
                guard part == literal else { return nil }
            case .parameter(let name):
                // `.` and `..` would name another upstream path once a server or proxy normalizes it.
                guard !part.isEmpty, let value = Self.percentDecode(part), value != ".", value != ".." else {
                    return nil
                }
                values[name] = value
            }
            index += 1
        }
        return index == self.segments.count ? values : nil
    }
}

extension PathTemplate {
    /// The canonical concrete path for placeholder values (one spelling per value, so that `/rooms/a%20b`
    /// and `/rooms/a b` are one feed).
    public func render(_ values: [String: String]) -> String {
        var path = ""
        for segment in self.segments {
            path += "/"
            switch segment {
            case .literal(let literal): path += literal
            case .parameter(let name): path += UpstreamURL.percentEncode(values[name] ?? "")
            }
        }
        return path.isEmpty ? "/" : path
    }

    /// Percent-decodes a path segment; nil for a malformed escape or a value that is not UTF-8.
    static func percentDecode(_ text: Substring) -> String? {
        guard text.contains("%") else { return String(text) }
        return PercentDecoding.bytes(text).flatMap { String(validating: $0, as: UTF8.self) }
    }
}

public struct PathTemplateError: Error, Sendable {
    public var message: String
}

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
