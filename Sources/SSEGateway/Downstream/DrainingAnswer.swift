import NIOCore

/// What a stream or poll request gets once the gateway drains (SIGTERM) and it arrives on a connection
/// that was already open (HTTP/1.1 keep-alive, an HTTP/2 connection with other streams): a `200
/// text/event-stream` that carries only a jittered `retry:` and ends, with the HTTP/1.1 connection
/// closed. `EventSource` reconnects after that delay on a new connection, which the load balancer sends
/// to another replica. A `503` would end it for good (readyState CLOSED): the page would stop updating
/// at every rolling restart.
enum DrainingAnswer {
    /// The head and body; `retry` is the feed's, spread as the drain spreads its own `retry:`.
    static func response(retry: TimeAmount, corsHeaders: [(String, String)]) -> (ResponseHead, String) {
        var head = ResponseHead.eventStream()
        head.headers += corsHeaders
        let milliseconds = DrainPlan<DrainingClient>.jitteredRetry(retry).nanoseconds / 1_000_000
        return (head, "retry: \(milliseconds)\n\n")
    }

    /// The access log's reason for the request.
    static let reason = "draining"
}
