/// One `cors.allow_origins` entry, parsed once at load time: `*`, an exact origin
/// (`https://app.example.com`, `http://127.0.0.1:3000`), or a subdomain wildcard (`https://*.example.com`).
///
/// Matching follows how browsers write the `Origin` header (RFC 6454 §6.2): scheme and host in lower
/// case, the port only when it is not the scheme's default. So the pattern is kept in that form too:
/// `HTTPS://App.Example.com:443` is stored as `https://app.example.com`. A wildcard stands for one or
/// more whole labels, never for nothing: `https://*.example.com` matches `https://a.example.com` and
/// `https://a.b.example.com`, but not `https://example.com`, `https://evilexample.com`,
/// `http://a.example.com` or `https://a.example.com:8443` (the port must match as written).
public enum OriginPattern: Sendable, Hashable, CustomStringConvertible {
    /// `*`: every origin (never with credentials; the loader refuses that combination).
    case any
    /// One origin, normalized (`https://app.example.com`, `http://[::1]:3000`).
    case exact(String)
    /// `scheme://*.suffix[:port]`: `suffix` is the domain after the wildcard's dot (`example.com`),
    /// `port` the port as written (nil: the scheme's default).
    case subdomains(scheme: String, suffix: String, port: Int?)

    /// Parses a config entry. Throws a message that says what to write instead.
    public init(parsing text: String) throws(OriginPatternError) {
        if text == "*" {
            self = .any
            return
        }
        let lowered = text.lowercased()
        let scheme: String
        if lowered.hasPrefix("https://") {
            scheme = "https"
        } else if lowered.hasPrefix("http://") {
            scheme = "http"
        } else {
            throw OriginPatternError(
                "expected '*' or an origin such as https://app.example.com or https://*.example.com "
                    + "(scheme://host[:port], no path), got '\(text)'"
            )
        }
        let authority = lowered.dropFirst(scheme.count + 3)
        // Origins are compared whole, so a trailing slash, a path or user info would silently never match.
        guard !authority.isEmpty, !authority.contains(where: { "/?#@".contains($0) || $0.isWhitespace }) else {
            throw OriginPatternError(
                "expected '*' or an origin such as https://app.example.com or https://*.example.com "
                    + "(scheme://host[:port], no path), got '\(text)'"
            )
        }
        let (host, port) = try Self.splitPort(authority, scheme: scheme, text: text)
        let portSuffix = port.map { ":\($0)" } ?? ""
        guard host.contains("*") else {
            self = .exact("\(scheme)://\(host)\(portSuffix)")
            return
        }
        guard host.hasPrefix("*.") else {
            throw OriginPatternError(
                host == "*"
                    ? "a wildcard needs a domain after it, as in \(scheme)://*.example.com; use '*' alone for every origin, got '\(text)'"
                    : "a wildcard must be the whole leftmost label, as in \(scheme)://*.example.com, got '\(text)'"
            )
        }
        let suffix = host.dropFirst(2)
        guard !suffix.contains("*") else {
            throw OriginPatternError(
                "only one wildcard, as the whole leftmost label, is allowed (\(scheme)://*.example.com), got '\(text)'"
            )
        }
        let labels = suffix.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.allSatisfy({ !$0.isEmpty && $0.allSatisfy(Self.isLabelCharacter) }) else {
            throw OriginPatternError("'\(suffix)' after the wildcard is not a domain name, got '\(text)'")
        }
        // `*.com` would open the feed to every site under a top-level domain; `localhost` is the one
        // single-label domain with subdomains people really use (`http://*.localhost:3000` in development).
        guard labels.count >= 2 || suffix == "localhost" else {
            throw OriginPatternError(
                "a wildcard must be followed by a domain of at least two labels (*.example.com, not *.\(suffix)), "
                    + "got '\(text)'"
            )
        }
        self = .subdomains(scheme: scheme, suffix: String(suffix), port: port)
    }

    /// Whether a request's `Origin` header value is allowed by this entry.
    public func matches(_ origin: String) -> Bool {
        switch self {
        case .any:
            return true
        case .exact(let allowed):
            // Browsers send lower case already; other clients may not, and scheme and host ignore case.
            return allowed == origin || allowed == origin.lowercased()
        case .subdomains(let scheme, let suffix, let port):
            let origin = origin.lowercased()
            let prefix = scheme + "://"
            guard origin.hasPrefix(prefix) else { return false }
            var host = origin.dropFirst(prefix.count)
            if let port {
                let portSuffix = ":\(port)"
                guard host.hasSuffix(portSuffix) else { return false }
                host = host.dropLast(portSuffix.count)
            }
            // The label boundary: `a.example.com` ends with `.example.com`; `evilexample.com` does not.
            let dottedSuffix = "." + suffix
            guard host.count > dottedSuffix.count, host.hasSuffix(dottedSuffix) else { return false }
            let subdomain = host.dropLast(dottedSuffix.count)
            let labels = subdomain.split(separator: ".", omittingEmptySubsequences: false)
            return labels.allSatisfy { !$0.isEmpty && $0.allSatisfy(Self.isLabelCharacter) }
        }
    }

    /// The entry in its normalized form, as it could be written in the config.
    public var description: String {
        switch self {
        case .any: return "*"
        case .exact(let origin): return origin
        case .subdomains(let scheme, let suffix, let port):
            return "\(scheme)://*.\(suffix)" + (port.map { ":\($0)" } ?? "")
        }
    }

    /// Host and port; the scheme's default port is dropped, since browsers leave it out of `Origin`.
    private static func splitPort(
        _ authority: Substring,
        scheme: String,
        text: String
    ) throws(OriginPatternError) -> (host: Substring, port: Int?) {
        var host = authority
        var portText: Substring?
        if authority.hasPrefix("[") {
            // An IPv6 literal: the port, if any, follows the closing bracket.
            guard let close = authority.firstIndex(of: "]") else {
                throw OriginPatternError("an IPv6 address needs its closing ']', got '\(text)'")
            }
            host = authority[...close]
            let rest = authority[authority.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else {
                    throw OriginPatternError("expected ':port' after the IPv6 address, got '\(text)'")
                }
                portText = rest.dropFirst()
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        }
        guard !host.isEmpty else {
            throw OriginPatternError("the origin has no host, got '\(text)'")
        }
        guard let portText else { return (host, nil) }
        guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy(\.isASCIIDigit), let port = Int(portText),
            (1...65535).contains(port)
        else {
            throw OriginPatternError("the port must be a number from 1 to 65535, got '\(text)'")
        }
        let defaultPort = scheme == "https" ? 443 : 80
        return (host, port == defaultPort ? nil : port)
    }

    /// Letters, digits and `-` (and `_`, which some internal names use); an IDN is written in its
    /// `xn--` form, as browsers send it.
    private static func isLabelCharacter(_ character: Character) -> Bool {
        character.isASCII && (character.isLetter || character.isNumber || character == "-" || character == "_")
    }
}

/// Why a `cors.allow_origins` entry is not an origin pattern; the message is shown at the entry's line.
public struct OriginPatternError: Error, Sendable, Equatable {
    public var message: String

    init(_ message: String) {
        self.message = message
    }
}

extension OriginPattern: ExpressibleByStringLiteral {
    /// For code and tests that write a known-good pattern; config text goes through `init(parsing:)`.
    public init(stringLiteral value: String) {
        do {
            self = try OriginPattern(parsing: value)
        } catch {
            preconditionFailure("invalid origin pattern literal '\(value)': \(error.message)")
        }
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { self.isASCII && self.isNumber }
}
