import NIOCore
import NIOHTTP1

/// A subscribe request after routing.
struct StreamRequest {
    var target: FeedRegistry.Target
    var resumeID: String?
    var headOnly: Bool
    /// Extra response headers: CORS when the request's `Origin` is allowed, `Vary` when compression is on.
    var corsHeaders: [(String, String)]
    /// HTTP/1.0 or `Connection: close` from the client: stream without chunking, close at the end.
    var http10: Bool
    /// The feed allows compression and the client accepts gzip.
    var gzip: Bool
    /// The client's address (the TCP peer's IP for now), for the per-address limits; set by the handler.
    var clientAddress: String? = nil
    /// What the feed's authorizer looks at; nil when the feed lets everyone in (`auth: none`).
    var authRequest: AuthRequest? = nil
    /// Poll mode (`?transport=poll`, or `delivery: poll` on the feed or listener): one finite response.
    var poll: PollSettings? = nil
    /// The event types asked for with `?event=`; nil: every event.
    var eventFilter: EventFilter? = nil
    /// What the access log keeps of the request; nil when the log is off.
    var log: AccessLogRequest? = nil
}
