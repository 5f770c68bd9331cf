/// Why a request's exchange ended, as the access log's `end` field says it.
public enum AccessLogEnd: String, Sendable, CaseIterable {
    /// The client closed the connection or reset the stream (before an answer: status 499, as nginx logs it).
    case clientClosed = "client_closed"
    /// Evicted: more than `client.max_queue` bytes behind.
    case evictedMaxQueue = "evicted_max_queue"
    /// Evicted: its oldest unsent event older than `client.max_lag`.
    case evictedMaxLag = "evicted_max_lag"
    /// Closed by the graceful drain (SIGTERM), to reconnect to another replica.
    case drained
    /// Closed by the final shutdown (after the drain window, or without a drain).
    case shutdown
    /// The credential's `exp` came: ended with `auth-expired`.
    case authExpired = "auth_expired"
    /// A re-check (forward auth `recheck`) refused the credential while streaming.
    case authRevoked = "auth_revoked"
    /// The access gate refused the request (401 or 403).
    case authRefused = "auth_refused"
    /// The auth backend could not answer (503).
    case authUnavailable = "auth_unavailable"
    /// A reload removed the feed.
    case feedRemoved = "feed_removed"
    /// A reload changed the feed's `auth:` gate: the client comes back through the new one.
    case authChanged = "auth_changed"
    /// The upstream answered a new template instance with 404 or 410.
    case upstreamRefused = "upstream_refused"
    /// Refused by the gateway itself (a limit, an unknown path, a bad request): `reason` says which.
    case refused
    /// A complete, finite answer: a poll, a HEAD, an OPTIONS preflight.
    case answered
    /// The stream's transport failed (a compressor error).
    case error
}

extension AccessLogEnd {
    /// The end of a stream the fan-out evicted.
    init(_ reason: EvictionReason) {
        switch reason {
        case .maxQueue: self = .evictedMaxQueue
        case .maxLag: self = .evictedMaxLag
        }
    }

    /// The end of a stream the fan-out closed.
    init(_ reason: CloseReason) {
        switch reason {
        case .drained: self = .drained
        case .shutdown: self = .shutdown
        case .feedRemoved: self = .feedRemoved
        case .authChanged: self = .authChanged
        }
    }
}
