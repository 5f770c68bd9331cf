import NIOCore

/// When a JWKS URL is fetched, and when a failure is worth a log line. A plain value: ``JWKSKeySource`` asks it
/// before every fetch and tells it how each fetch ended, and carries out what it answers.
///
/// - One fetch at a time: a demand while a fetch runs joins it (concurrent unknown-`kid` tokens share one).
/// - A token naming an unknown `kid` starts a fetch only when the last one started at least `minInterval` ago,
///   so random `kid`s cannot turn the gateway into a load generator against the identity provider. The start-up
///   fetch and the periodic refresh always fetch; they count as the last fetch for that limit.
/// - Health is a streak: the first failure after a success (or at start-up) and the first success after a
///   failure are reported, nothing in between, so a provider that is down costs one log line, not one per token.
/// - Stopped (the refresh task ended) is final: nothing starts a fetch any more, so no task outlives it.
struct JWKSRefreshSchedule: Sendable {
    enum State: Sendable, Hashable {
        case idle
        case fetching
        case stopped
    }

    /// What the caller does about a demand for a fetch.
    enum Decision: Sendable, Hashable {
        /// Start a fetch now (the schedule is now `fetching`), and wait for it.
        case start
        /// Wait for the fetch already running.
        case join
        /// Fetch nothing: too soon after the last fetch, or stopped.
        case refuse
    }

    /// What a finished fetch changes in the provider's health, for the log.
    enum HealthChange: Sendable, Hashable {
        case unchanged
        /// The first failure of a streak (including a failed start-up fetch).
        case startedFailing
        /// The first success after a streak of failures.
        case recovered
    }

    let minInterval: TimeAmount
    private(set) var state: State = .idle
    /// When the last fetch started, for the unknown-`kid` rate limit.
    private(set) var lastStart: NIODeadline?
    private(set) var isFailing = false

    init(minInterval: TimeAmount) {
        self.minInterval = minInterval
    }

    /// A token named a `kid` that the current set lacks.
    mutating func unknownKeyID(at now: NIODeadline) -> Decision {
        switch self.state {
        case .stopped: return .refuse
        case .fetching: return .join
        case .idle:
            if let lastStart = self.lastStart, now - lastStart < self.minInterval { return .refuse }
            return self.start(at: now)
        }
    }

    /// The start-up fetch or a periodic refresh: not rate-limited.
    mutating func refreshDue(at now: NIODeadline) -> Decision {
        switch self.state {
        case .stopped: return .refuse
        case .fetching: return .join
        case .idle: return self.start(at: now)
        }
    }

    private mutating func start(at now: NIODeadline) -> Decision {
        self.state = .fetching
        self.lastStart = now
        return .start
    }

    /// The running fetch ended. After ``stop()`` the fetch may still report (it was cancelled); the state stays
    /// stopped.
    mutating func fetchEnded(succeeded: Bool) -> HealthChange {
        switch self.state {
        case .fetching: self.state = .idle
        case .stopped: break
        case .idle: preconditionFailure("Invalid state: a fetch ended while none was running")
        }
        defer { self.isFailing = !succeeded }
        switch (self.isFailing, succeeded) {
        case (false, false): return .startedFailing
        case (true, true): return .recovered
        case (false, true), (true, false): return .unchanged
        }
    }

    mutating func stop() {
        self.state = .stopped
    }
}
