/// How a feed's events reach a client (SPEC §6a): one long-lived response, or finite poll responses for
/// proxies that hold a streaming response until it ends.
public enum DeliveryMode: String, Sendable, Equatable {
    /// One `text/event-stream` response that stays open.
    case stream
    /// Each request gets a finite response with `Content-Length` (`PollSettings`); EventSource reconnects.
    case poll
}
