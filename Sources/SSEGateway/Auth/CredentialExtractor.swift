import NIOHTTP1

/// Finds the bearer token in a request, in the order SPEC §6 gives: `Authorization: Bearer`, then the
/// configured cookie, then `access_token` in the query when that dialect is allowed. `EventSource` cannot
/// set headers, so browsers use the cookie or the query.
///
/// Pure: headers and query in, a ``Credential`` or nil out. An `Authorization` header with another scheme
/// (`Basic ...`) is not a bearer credential and does not stop the search.
public struct CredentialExtractor: Sendable, Hashable {
    /// The query parameter a token may travel in.
    public static let queryParameter = "access_token"

    /// The cookie looked at after the header; nil looks at no cookie.
    public var cookieName: String?
    /// Whether `access_token` in the query counts (off by default: URLs end up in logs and browser history).
    public var allowQueryToken: Bool

    public init(cookieName: String? = nil, allowQueryToken: Bool = false) {
        self.cookieName = cookieName
        self.allowQueryToken = allowQueryToken
    }

    /// The first credential found, or nil when the request brought none that this extractor looks at.
    public func credential(headers: HTTPHeaders, query: Substring) -> Credential? {
        for value in headers["authorization"] {
            if let token = Self.bearerToken(Substring(value)) {
                return Credential(token: token, source: .authorizationHeader)
            }
        }
        if let cookieName = self.cookieName {
            // HTTP/2 clients may split cookies over several `cookie` fields (RFC 9113 §8.2.3).
            for value in headers["cookie"] {
                if let token = Self.cookie(named: cookieName, in: Substring(value)) {
                    return Credential(token: token, source: .cookie)
                }
            }
        }
        if self.allowQueryToken, let token = Self.queryToken(query) {
            return Credential(token: token, source: .query)
        }
        return nil
    }

    /// The token of a `Bearer` credential (scheme case-insensitive, RFC 6750 §2.1), or nil for another scheme.
    static func bearerToken(_ value: Substring) -> String? {
        let trimmed = value.drop { $0 == " " || $0 == "\t" }
        let scheme = trimmed.prefix { $0 != " " && $0 != "\t" }
        guard scheme.lowercased() == "bearer" else { return nil }
        let rest = trimmed.dropFirst(scheme.count)
        return String(rest.trimmingOWS())
    }

    /// The value of cookie `name` in one `Cookie` field (`a=1; b=2`, RFC 6265 §4.2.1), surrounding double
    /// quotes removed; the first occurrence wins.
    static func cookie(named name: String, in field: Substring) -> String? {
        for pair in field.split(separator: ";") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, parts[0].trimmingOWS() == name else { continue }
            var value = parts[1].trimmingOWS()
            if value.count >= 2 && value.first == "\"" && value.last == "\"" { value = value.dropFirst().dropLast() }
            return String(value)
        }
        return nil
    }

    /// The first `access_token` value in a query string (percent-decoded), or nil.
    static func queryToken(_ query: Substring) -> String? {
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard Self.isTokenParameter(parts[0]) else { continue }
            return parts.count > 1 ? RequestRouter.percentDecode(parts[1]) : ""
        }
        return nil
    }

    /// `target` (a path with an optional query) with every `access_token` value replaced by `REDACTED`, for
    /// log lines. Names are compared percent-decoded, as ``queryToken(_:)`` reads them, so an encoded name
    /// cannot carry a token past the redaction.
    public static func redactingQueryToken(_ target: String) -> String {
        QueryRedaction.redacting(target) { pair, name, value in
            guard value != nil, Self.isTokenParameter(name) else { return String(pair) }
            return name + "=REDACTED"
        }
    }

    private static func isTokenParameter(_ name: Substring) -> Bool {
        name == Self.queryParameter[...] || RequestRouter.percentDecode(name) == Self.queryParameter
    }
}

extension Substring {
    /// Without leading and trailing spaces and tabs (HTTP's optional whitespace).
    fileprivate func trimmingOWS() -> Substring {
        var trimmed = self
        while let first = trimmed.first, first == " " || first == "\t" { trimmed.removeFirst() }
        while let last = trimmed.last, last == " " || last == "\t" { trimmed.removeLast() }
        return trimmed
    }
}
