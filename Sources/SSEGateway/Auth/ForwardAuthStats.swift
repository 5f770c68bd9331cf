/// Counters and gauges of one ``ForwardAuthorizer``, for `/metrics` and tests.
public struct ForwardAuthStats: Sendable, Equatable {
    /// Calls made to the backend (each flight that got a slot).
    public var backendCalls = 0
    /// Decisions served from the cache without waiting.
    public var cacheHits = 0
    /// Callers that joined a flight another caller started.
    public var coalesced = 0
    /// Flights that found every slot busy for the whole queue timeout.
    public var saturated = 0
    /// Calls to the backend under way now.
    public var inFlight = 0
    /// Flights waiting for a call slot now.
    public var waiting = 0
    /// Keys with a flight (waiting or calling) now.
    public var flights = 0
    /// Answers cached now.
    public var cachedAnswers = 0

    public init() {}
}
