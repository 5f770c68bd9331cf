/// How a poll request ended, for `/metrics` (`ssegate_poll_responses_total{result}`).
enum PollResult: String, CaseIterable, Sendable {
    /// Events (or a gap signal) were sent.
    case events
    /// Only the feed's last id, to a poll without a resume id.
    case id
    /// Nothing arrived within `poll.timeout` (or the gateway drained): only `retry:`.
    case empty
    /// Over `poll.max_waiting`: 503.
    case overCapacity = "over_capacity"
    /// The client left before the answer.
    case left
}
