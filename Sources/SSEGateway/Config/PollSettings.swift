import NIOCore

/// Poll mode's timers (`poll:` in `defaults:` or a feed). `max_waiting` is gateway-wide and lives in
/// `LimitsConfig.maxPollWaiting`.
public struct PollSettings: Sendable, Equatable {
    /// The `retry:` a poll response carries: how soon EventSource asks again.
    public var retry: TimeAmount = .milliseconds(250)
    /// How long a poll with nothing to send waits for a batch (below common proxy timeouts).
    public var timeout: TimeAmount = .seconds(20)
    /// After the first batch, how long the response waits for more before it ends.
    public var gather: TimeAmount = .milliseconds(50)

    public init() {}
}
