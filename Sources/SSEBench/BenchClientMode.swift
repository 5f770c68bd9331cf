/// How each bench client reads its URL, beside plain streaming.
public struct BenchClientMode: Sendable, Equatable {
    /// `--poll`: finite responses asked for again and again on one keep-alive connection.
    public var poll = false
    /// `--multi`: a multi-feed stream whose composite ids tie each event to its feed.
    public var multi = false
    /// `--reconnect`: a stream that, like `EventSource`, comes back after each close or refusal (its
    /// `retry:`, or the `Retry-After` of a `503`) with `Last-Event-ID`, keeping one seq count across
    /// its connections, so a gap or a duplicate anywhere in its life is counted.
    public var reconnect = false

    public init(poll: Bool = false, multi: Bool = false, reconnect: Bool = false) {
        self.poll = poll
        self.multi = multi
        self.reconnect = reconnect
    }

    /// For the report: `stream`, `poll`, `multi`, `multi-poll` or `reconnect`.
    public var name: String {
        if self.reconnect { return "reconnect" }
        switch (self.multi, self.poll) {
        case (false, false): return "stream"
        case (false, true): return "poll"
        case (true, false): return "multi"
        case (true, true): return "multi-poll"
        }
    }
}
