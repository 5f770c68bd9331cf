/// Why the fan-out ends a client's stream cleanly (`SubscriberSink.close`), for the access log.
public enum CloseReason: String, Sendable, CaseIterable {
    /// The graceful drain closed it (SIGTERM), at its moment in the drain window.
    case drained
    /// The gateway shut down (what the drain had not closed yet).
    case shutdown
    /// A reload removed the feed.
    case feedRemoved = "feed_removed"
    /// A reload changed the feed's `auth:` gate: every stream comes back through the new one.
    case authChanged = "auth_changed"
}
