import NIOCore

/// What a connection handler tells the session it carries: a one-feed `StreamSession` or a `MultiSession`.
protocol ClientSession: AnyObject {
    /// Starts an admitted session: checks access where a feed demands it, then joins its feeds (the
    /// response follows when they answer).
    func begin()
    /// The transport's writability changed (channel watermarks, or HTTP/2 flow control).
    func writabilityChanged()
    /// The connection or stream is gone.
    func transportClosed()
    /// The connection or stream failed (an I/O or TLS error, not the client's close); `transportClosed`
    /// follows. For the access log's `error`.
    func transportFailed(_ error: any Error)
}

extension StreamSession: ClientSession {}

/// What a session's `admission` decided: the session, which the caller records (so that writability
/// changes reach it) and then begins; or the 503 to answer (`max_clients`, `max_clients_per_address`,
/// `poll.max_waiting`, or the `DrainingAnswer`) with its reason for the access log (the limit's name, or
/// "draining").
enum SessionAdmission<Session: ClientSession> {
    case admitted(Session)
    case refused(ResponseHead, String, reason: String)
}

extension SessionAdmission {
    /// Refused with `answer` (a head and its body).
    static func refused(_ answer: (ResponseHead, String), reason: String) -> Self {
        .refused(answer.0, answer.1, reason: reason)
    }

    /// During a drain: the `DrainingAnswer` (a 200 that tells the browser when to come back).
    static func draining(retry: TimeAmount, corsHeaders: [(String, String)]) -> Self {
        .refused(DrainingAnswer.response(retry: retry, corsHeaders: corsHeaders), reason: DrainingAnswer.reason)
    }
}
