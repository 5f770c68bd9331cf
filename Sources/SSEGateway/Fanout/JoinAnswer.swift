/// What a feed answers a client that asks to join it.
enum JoinAnswer: Sendable {
    /// Stream: the head, the prelude, this replay, then live events.
    case joined(ReplayBuffer.Lookup)
    /// The feed closed meanwhile (an instance that lingered out, a removed feed): resolve the path again.
    case closed
    /// The first upstream response of a new template instance was this status (404 or 410): the value
    /// does not exist, the client gets the status and the instance is gone.
    case upstreamRefused(status: Int)
}
