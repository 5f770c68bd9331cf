/// How each bench client reads its URL, beside plain streaming.
public struct BenchClientMode: Sendable, Equatable {
    /// `--poll`: finite responses asked for again and again on one keep-alive connection.
    public var poll = false
    /// `--multi`: a multi-feed stream whose composite ids tie each event to its feed.
    public var multi = false

    public init(poll: Bool = false, multi: Bool = false) {
        self.poll = poll
        self.multi = multi
    }

    /// For the report: `stream`, `poll`, `multi` or `multi-poll`.
    public var name: String {
        switch (self.multi, self.poll) {
        case (false, false): "stream"
        case (false, true): "poll"
        case (true, false): "multi"
        case (true, true): "multi-poll"
        }
    }
}
