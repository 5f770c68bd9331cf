/// Who names the events' ids.
public enum IDMode: String, Sendable, Equatable {
    /// Pass the upstream's ids through unchanged.
    case upstream
    /// Assign an id to each event that arrives without one.
    case gateway
}
