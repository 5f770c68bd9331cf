import SSE

/// What an upstream connection reports to its feed. Called on the feed's event loop.
protocol UpstreamDelegate: AnyObject {
    /// Events parsed from one read burst, in order.
    func upstreamReceived(_ events: [ServerSentEvent])
    func upstreamStateChanged(_ state: UpstreamStateMachine.State, failure: UpstreamFailure?)
}
