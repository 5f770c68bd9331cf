import NIOCore
import NIOHTTP1

/// Routes requests to feeds and answers everything that is not a stream (SPEC §3): 404, 405 + `Allow`,
/// CORS preflight, HEAD, 503 over `max_feeds`.
struct RequestRouter {
    static let allowedMethods = "GET, HEAD, OPTIONS"
    let registry: FeedRegistry
    /// The listener's `delivery:` (poll answers every feed request in poll mode); nil: as the feed says.
    var listenerDelivery: DeliveryMode? = nil
    /// The limits in force (`multi:` among them).
    var limits = LimitsConfig()

    static let requestHeaderFieldsTooLarge = HTTPResponseStatus(
        statusCode: 431,
        reasonPhrase: "Request Header Fields Too Large"
    )

    /// `431` (and a close over HTTP/1) when the head has more than `limits.max_header_count` fields: the
    /// only `431` the router gives, so the handlers count it as a header-count refusal.
    func route(_ head: HTTPRequestHead) -> RouteDecision {
        if head.headers.count > self.limits.maxHeaderCount {
            let (response, body) = ResponseHead.plain(
                Self.requestHeaderFieldsTooLarge,
                "request header fields too large: more than \(self.limits.maxHeaderCount) fields\n"
            )
            return .respond(response, body: body, close: true)
        }
        if !Self.hasValidHost(head) {
            let (response, body) = ResponseHead.plain(.badRequest, "bad request: exactly one Host header is required\n")
            return .respond(response, body: body, close: true)
        }
        let (path, query) = Self.split(head.uri)
        if head.method == .OPTIONS && head.uri == "*" {
            return .respond(
                ResponseHead(status: .noContent, headers: [("Allow", Self.allowedMethods)]),
                body: "",
                close: false
            )
        }
        if path == self.limits.multi.path {
            return MultiRequest.route(
                head,
                path: path,
                query: query,
                registry: self.registry,
                limits: self.limits,
                listenerDelivery: self.listenerDelivery
            )
        }
        guard let target = self.registry.lookup(path: path) else {
            let (response, body) = ResponseHead.plain(.notFound, "not found\n")
            return .respond(response, body: body, close: false)
        }
        let cors = target.definition.settings.cors
        let origin = head.headers.first(name: "Origin")
        switch head.method {
        case .GET, .HEAD:
            let eventFilter: EventFilter?
            do {
                eventFilter = try EventFilter(query: query)
            } catch {
                let (response, body) = ResponseHead.plain(
                    .badRequest,
                    "bad request: \(error.message)\n",
                    headers: Self.corsHeaders(origin: origin, cors: cors)
                )
                return .respond(response, body: body, close: false)
            }
            let resumeID = head.headers.first(name: "Last-Event-ID") ?? Self.queryResumeID(query)
            let http10 = head.version.major == 1 && head.version.minor == 0
            let compression = target.definition.settings.compression
            var headers = Self.corsHeaders(origin: origin, cors: cors)
            if compression {
                headers.append(("Vary", "Accept-Encoding"))
            }
            var request = StreamRequest(
                target: target,
                resumeID: resumeID,
                headOnly: head.method == .HEAD,
                corsHeaders: headers,
                http10: http10,
                gzip: compression && GzipTransport.accepts(head.headers["Accept-Encoding"])
            )
            let settings = target.definition.settings
            if settings.delivery == .poll || self.listenerDelivery == .poll || Self.asksForPoll(query) {
                request.poll = settings.poll
            }
            request.eventFilter = eventFilter
            if target.definition.settings.auth.mode != .none {
                request.authRequest = AuthRequest(headers: head.headers, path: String(path), query: String(query))
            }
            return .stream(request)
        case .OPTIONS:
            let headers =
                [("Allow", Self.allowedMethods)]
                + Self.preflightHeaders(origin: origin, settings: target.definition.settings)
            return .respond(ResponseHead(status: .noContent, headers: headers), body: "", close: false)
        default:
            let (response, body) = ResponseHead.plain(
                .methodNotAllowed,
                "method not allowed\n",
                headers: [("Allow", Self.allowedMethods)]
            )
            return .respond(response, body: body, close: false)
        }
    }

    /// RFC 9112 §3.2: an HTTP/1.1 request without `Host`, or any HTTP/1.x request with more than one, is a 400.
    /// HTTP/1.0 may leave it out; HTTP/2 names the authority in `:authority` and is not checked here.
    static func hasValidHost(_ head: HTTPRequestHead) -> Bool {
        guard head.version.major == 1 else { return true }
        switch head.headers["Host"].count {
        case 0: return head.version.minor == 0
        case 1: return true
        default: return false
        }
    }

    /// The CORS headers of every answer for a feed — streams, HEAD, and refusals (401, 403, 404 of a
    /// template value, 503) alike, so a browser can read why it was refused — given the request's `Origin`.
    ///
    /// - No `allow_origins`: nothing (deny by default; the answer does not depend on the origin).
    /// - `*`: `Access-Control-Allow-Origin: *`, whatever the `Origin`, so the answer is the same for everyone
    ///   and caches need no `Vary`. Never with credentials: the loader refuses `*` with `allow_credentials`,
    ///   and a config built in code that has both still gets no `Access-Control-Allow-Credentials`.
    /// - Otherwise `Vary: Origin` always, also when the origin is refused or absent, so that a cache never
    ///   serves one origin's answer to another; an allowed origin is echoed, with
    ///   `Access-Control-Allow-Credentials: true` when credentials are allowed.
    static func corsHeaders(origin: String?, cors: CORSConfig) -> [(String, String)] {
        guard !cors.allowOrigins.isEmpty else { return [] }
        if cors.allowsAnyOrigin {
            return [("Access-Control-Allow-Origin", "*"), ("Access-Control-Expose-Headers", "Last-Event-ID")]
        }
        var headers = [("Vary", "Origin")]
        guard let origin, cors.allows(origin: origin) else { return headers }
        headers.append(("Access-Control-Allow-Origin", origin))
        if cors.allowCredentials {
            headers.append(("Access-Control-Allow-Credentials", "true"))
        }
        headers.append(("Access-Control-Expose-Headers", "Last-Event-ID"))
        return headers
    }

    /// The CORS part of an `OPTIONS` answer: `corsHeaders`, and for an allowed origin the methods and
    /// request headers a stream may use — `Authorization` too when the feed takes a credential (a page
    /// that fetches the stream with a bearer token asks for it in its preflight).
    static func preflightHeaders(origin: String?, settings: FeedSettings) -> [(String, String)] {
        var headers = Self.corsHeaders(origin: origin, cors: settings.cors)
        guard headers.contains(where: { $0.0 == "Access-Control-Allow-Origin" }) else { return headers }
        headers.append(("Access-Control-Allow-Methods", Self.allowedMethods))
        headers.append(("Access-Control-Allow-Headers", Self.allowedRequestHeaders(settings)))
        headers.append(("Access-Control-Max-Age", "600"))
        return headers
    }

    /// `Access-Control-Allow-Headers` of a preflight for a feed.
    static func allowedRequestHeaders(_ settings: FeedSettings) -> String {
        settings.auth.acceptsCredentials
            ? "Last-Event-ID, Cache-Control, Authorization" : "Last-Event-ID, Cache-Control"
    }

    static func split(_ uri: String) -> (path: Substring, query: Substring) {
        let target = Substring(uri)
        guard let mark = target.firstIndex(of: "?") else { return (target, "") }
        return (target[..<mark], target[target.index(after: mark)...])
    }

    /// `transport=poll` among the query parameters (SPEC §6a).
    static func asksForPoll(_ query: Substring) -> Bool {
        guard !query.isEmpty else { return false }
        return query.split(separator: "&").contains { $0 == "transport=poll" }
    }

    /// The resume id from the query parameters polyfills and other hubs use.
    static func queryResumeID(_ query: Substring) -> String? {
        guard !query.isEmpty else { return nil }
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = parts[0]
            guard name == "lastEventId" || name == "last_event_id" || name == "evs_last_event_id" else { continue }
            return parts.count > 1 ? percentDecode(parts[1]) : ""
        }
        return nil
    }

    /// A query value, `+` as a space; a malformed escape is kept as written (as browsers' URL parsers
    /// do), and bytes that are not UTF-8 become U+FFFD.
    static func percentDecode(_ text: Substring) -> String {
        guard let bytes = PercentDecoding.bytes(text, plusAsSpace: true) else { return String(text) }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func retryAfter(_ retry: TimeAmount) -> String {
        String(max(1, (retry.nanoseconds + 999_999_999) / 1_000_000_000))
    }

    /// `Retry-After` seconds between `retry` and twice that (at least 1-2 s), so clients refused together
    /// do not all come back in the same second.
    static func jitteredRetryAfter(_ retry: TimeAmount) -> String {
        let base = max(1, (retry.nanoseconds + 999_999_999) / 1_000_000_000)
        return String(Int64.random(in: base...(2 * base)))
    }
}
