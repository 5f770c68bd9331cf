import NIOCore
import NIOHTTP1

/// A `GET /multi?feed=/a&feed=/b` request after routing: the feeds in request order, each with what its
/// access gate looks at, and the composite id it resumes from.
struct MultiRequest {
    /// One requested feed.
    struct Member {
        var target: FeedRegistry.Target
        /// What the feed's authorizer looks at (the feed's own path); nil for `auth: none`.
        var authRequest: AuthRequest?
    }

    var members: [Member]
    /// The composite id from `Last-Event-ID` (or the polyfills' query parameter); nil when there was none or
    /// it was not a composite id for these feeds (then every feed starts live, as for a browser that lost
    /// its state).
    var resume: CompositeID?
    /// CORS headers of the first feed (CORS is normally set in `defaults`, the same for all).
    var corsHeaders: [(String, String)]
    var http10: Bool
    /// Every feed allows compression and the client accepts gzip.
    var gzip: Bool
    /// The longest composite id this stream may send (`CompositeID.maxLength`).
    var maxIDLength: Int
    var clientAddress: String? = nil
    /// What the access log keeps of the request; nil when the log is off.
    var log: AccessLogRequest? = nil
    /// Poll mode (`?transport=poll`, or `delivery: poll` on the listener or on any of the feeds): one finite
    /// response with the events of every feed, with the first feed's `poll:` settings.
    var poll: PollSettings? = nil
    /// The event types asked for with `?event=`, the same for every feed; nil: every event.
    var eventFilter: EventFilter? = nil

    /// Routes a multi request: 400 without a `feed=`, with one twice, over `multi.max_feeds`, with a bad
    /// `?event=` filter or with a resume id over the length bound; 404 naming a feed that does not exist.
    static func route(
        _ head: HTTPRequestHead,
        path: Substring,
        query: Substring,
        registry: FeedRegistry,
        limits: LimitsConfig,
        listenerDelivery: DeliveryMode? = nil
    ) -> RouteDecision {
        switch head.method {
        case .GET:
            break
        case .OPTIONS:
            return .respond(
                ResponseHead(status: .noContent, headers: [("Allow", "GET, OPTIONS")]),
                body: "",
                close: false
            )
        default:
            let (response, body) = ResponseHead.plain(
                .methodNotAllowed,
                "method not allowed\n",
                headers: [("Allow", "GET, OPTIONS")]
            )
            return .respond(response, body: body, close: false)
        }
        let paths = Self.feedParameters(query)
        guard !paths.isEmpty else {
            return Self.badRequest("name at least one feed: \(path)?feed=/a&feed=/b\n")
        }
        guard paths.count <= limits.multi.maxFeeds else {
            return Self.badRequest(
                "too many feeds: \(paths.count) requested, multi.max_feeds allows \(limits.multi.maxFeeds)\n"
            )
        }
        let eventFilter: EventFilter?
        do {
            eventFilter = try EventFilter(query: query)
        } catch {
            return Self.badRequest("bad request: \(error.message)\n")
        }
        var members: [Member] = []
        var seen = Set<String>()
        for feedPath in paths {
            guard let target = registry.lookup(path: Substring(feedPath)) else {
                let (response, body) = ResponseHead.plain(.notFound, "not found: feed \(feedPath)\n")
                return .respond(response, body: body, close: false)
            }
            guard seen.insert(target.key).inserted else {
                return Self.badRequest("feed \(feedPath) is requested twice\n")
            }
            var member = Member(target: target)
            if target.definition.settings.auth.mode != .none {
                member.authRequest = AuthRequest(headers: head.headers, path: target.key, query: String(query))
            }
            members.append(member)
        }
        let maxIDLength = CompositeID.maxLength(maxHeaderBytes: limits.maxHeaderBytes)
        let resumeText = head.headers.first(name: "Last-Event-ID") ?? RequestRouter.queryResumeID(query)
        if let resumeText, resumeText.utf8.count > maxIDLength {
            return Self.badRequest(Self.overLength(resumeText.utf8.count, bound: maxIDLength, feeds: members.count))
        }
        let first = members[0].target.definition.settings
        let compression = members.allSatisfy { $0.target.definition.settings.compression }
        var headers = RequestRouter.corsHeaders(origin: head.headers.first(name: "Origin"), cors: first.cors)
        if compression { headers.append(("Vary", "Accept-Encoding")) }
        var request = MultiRequest(
            members: members,
            resume: resumeText.flatMap { CompositeID.decode($0, feeds: members.count) },
            corsHeaders: headers,
            http10: head.version.major == 1 && head.version.minor == 0,
            gzip: compression && GzipTransport.accepts(head.headers["Accept-Encoding"]),
            maxIDLength: maxIDLength
        )
        request.eventFilter = eventFilter
        if listenerDelivery == .poll || RequestRouter.asksForPoll(query)
            || members.contains(where: { $0.target.definition.settings.delivery == .poll })
        {
            request.poll = first.poll
        }
        return .multi(request)
    }

    /// The 400 of a composite id over the bound, saying what to change.
    static func overLength(_ length: Int, bound: Int, feeds: Int) -> String {
        "composite event id of \(feeds) feeds is \(length) bytes, over the limit of \(bound) "
            + "(half of limits.max_header_bytes); ask for fewer feeds per connection\n"
    }

    private static func badRequest(_ text: String) -> RouteDecision {
        let (response, body) = ResponseHead.plain(.badRequest, text)
        return .respond(response, body: body, close: false)
    }

    /// The `feed=` values in order, percent-decoded.
    static func feedParameters(_ query: Substring) -> [String] {
        query.split(separator: "&").compactMap { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts[0] == "feed", parts.count == 2, !parts[1].isEmpty else { return nil }
            return RequestRouter.percentDecode(parts[1])
        }
    }
}
