import NIOCore

/// Why an upstream connection ended or could not be made.
public enum UpstreamFailure: Equatable, Sendable, CustomStringConvertible {
    case connectFailed(String)
    case status(Int)
    case contentType(String)
    /// `204 No Content`: the backend asked clients to stop; retried only at the maximum backoff.
    case noContent
    case idleTimeout
    /// The upstream ended the stream.
    case closed
    /// A line or event over `max_event_size`.
    case eventTooLarge
    case error(String)

    public var description: String {
        switch self {
        case .connectFailed(let reason): return "connect failed: \(reason)"
        case .status(let code): return "status \(code)"
        case .contentType(let type): return "wrong content type '\(type)'"
        case .noContent: return "status 204 (backend asked to stop)"
        case .idleTimeout: return "idle timeout"
        case .closed: return "stream closed by upstream"
        case .eventTooLarge: return "event over max_event_size"
        case .error(let reason): return reason
        }
    }

    /// Failures of the same kind are one state for logging, whatever their detail.
    var kind: Int {
        switch self {
        case .connectFailed: return 0
        case .status(let code): return 1000 + code
        case .contentType: return 2
        case .noContent: return 3
        case .idleTimeout: return 4
        case .closed: return 5
        case .eventTooLarge: return 6
        case .error: return 7
        }
    }
}

/// The lifecycle of one feed's upstream connection, as a value type without I/O:
/// idle → connecting → streaming → (failure) → waiting → connecting … ; stop() from anywhere.
///
/// Backoff is exponential from `initial` to `max` with equal jitter, and starts over only after a stream
/// stayed up for `resetAfter`: a backend that accepts, sends a few events and breaks the stream again is
/// backed off like one that refuses. The upstream's own `retry:` is a floor for the reconnects after the
/// connection that sent it (a later connection that does not repeat it clears it); `204` waits the maximum.
/// `logChange` in the returned decisions is true only when the state an operator cares about changed
/// (connected, or a failure of a new kind), so logs are one line per change. A flapping upstream (two
/// streams in a row that ended before `resetAfter`) is one state: its further connects and losses of the
/// same kind are not logged until a stream stays up for `resetAfter` (`streamStayedUp`).
public struct UpstreamStateMachine {
    public enum State: Equatable {
        case idle
        case connecting(attempt: Int)
        case streaming
        case waiting(attempt: Int)
        case stopped
    }

    public enum Action: Equatable {
        case none
        case connect
        /// Close the current connection (if any) and wait this long before `retryTimerFired`.
        case reconnectAfter(TimeAmount)
        /// Close the current connection and do nothing more.
        case close
    }

    public let initialBackoff: TimeAmount
    public let maxBackoff: TimeAmount
    /// How long a stream must stay up before its end counts as a first failure again.
    public let resetAfter: TimeAmount
    public private(set) var state: State = .idle
    /// The upstream's `retry:` in effect, a floor for the backoff.
    public private(set) var retryFloor: TimeAmount?
    /// Consecutive failures since the last stream that stayed up for `resetAfter`.
    public private(set) var failures = 0
    private var lastReportedKind: Int?
    /// When the current stream started (set in `.streaming` only).
    private var streamingSince: NIODeadline?
    /// Streams in a row that ended before `resetAfter`.
    public private(set) var shortStreams = 0

    /// Streams keep ending soon after they start: connects and same-kind losses are no longer logged.
    public var isFlapping: Bool { self.shortStreams >= 2 }

    public init(initialBackoff: TimeAmount, maxBackoff: TimeAmount, resetAfter: TimeAmount = .seconds(10)) {
        self.initialBackoff = initialBackoff
        self.maxBackoff = max(initialBackoff, maxBackoff)
        self.resetAfter = resetAfter
    }

    public mutating func start() -> Action {
        switch self.state {
        case .idle, .stopped:
            self.state = .connecting(attempt: self.failures)
            return .connect
        case .connecting, .streaming, .waiting:
            return .none
        }
    }

    /// A 2xx `text/event-stream` response arrived at `now`. Returns true when this is worth a log line.
    ///
    /// A `retry:` of an earlier connection stops being a floor here: only a connection that sends it
    /// again (after this point) sets it again, so one huge value does not stretch every later reconnect.
    public mutating func streamStarted(at now: NIODeadline) -> Bool {
        guard case .connecting = self.state else { return false }
        self.state = .streaming
        self.streamingSince = now
        self.retryFloor = nil
        guard !self.isFlapping else {
            // The loss of this stream, if it is short again, is then not a new state either.
            return false
        }
        let report = self.lastReportedKind != -1
        self.lastReportedKind = -1
        return report
    }

    /// The current stream has been up for `resetAfter` (a timer set when it started): the upstream is
    /// healthy again, so the backoff starts over now. Returns true when this ends a flapping spell and
    /// is worth a log line (the connects during the spell were not logged).
    public mutating func streamStayedUp(at now: NIODeadline) -> Bool {
        guard case .streaming = self.state, let since = self.streamingSince, now - since >= self.resetAfter else {
            return false
        }
        self.failures = 0
        let wasFlapping = self.isFlapping
        self.shortStreams = 0
        if wasFlapping {
            self.lastReportedKind = -1
        }
        return wasFlapping
    }

    /// The upstream's `retry:`, a floor for the backoff but never above `maxBackoff`.
    public mutating func upstreamRetry(milliseconds: Int) {
        self.retryFloor = min(.milliseconds(Int64(min(milliseconds, 86_400_000))), self.maxBackoff)
    }

    /// The connection failed or ended at `now`. `jitter` is a uniform random number in [0, 1).
    public mutating func failed(
        _ failure: UpstreamFailure,
        jitter: Double,
        at now: NIODeadline
    ) -> (action: Action, logChange: Bool) {
        switch self.state {
        case .streaming:
            // Only a stream that stayed up long enough proves the upstream healthy; events alone do not,
            // or a backend that sends two events and breaks the stream would be retried at `initial` forever.
            if let since = self.streamingSince, now - since >= self.resetAfter {
                self.failures = 0
                self.shortStreams = 0
            } else {
                self.shortStreams += 1
            }
            self.streamingSince = nil
        case .connecting:
            break
        case .idle, .waiting, .stopped:
            return (.none, false)
        }
        let logChange = self.lastReportedKind != failure.kind
        self.lastReportedKind = failure.kind
        let delay = self.backoff(after: failure, jitter: jitter)
        self.failures += 1
        self.state = .waiting(attempt: self.failures)
        return (.reconnectAfter(delay), logChange)
    }

    public mutating func retryTimerFired() -> Action {
        guard case .waiting(let attempt) = self.state else { return .none }
        self.state = .connecting(attempt: attempt)
        return .connect
    }

    /// Stops at `now` (an on-demand feed whose last client left): a stream that was up for `resetAfter`
    /// counts as healthy, so the next start begins with the initial backoff.
    public mutating func stop(at now: NIODeadline? = nil) -> Action {
        switch self.state {
        case .stopped, .idle:
            self.state = .stopped
            return .none
        case .connecting, .streaming, .waiting:
            if case .streaming = self.state, let now, let since = self.streamingSince, now - since >= self.resetAfter {
                self.failures = 0
            }
            self.state = .stopped
            self.lastReportedKind = nil
            self.streamingSince = nil
            // Logging starts afresh with the next start (its connect is logged).
            self.shortStreams = 0
            return .close
        }
    }

    /// The delay before the next attempt after `failure`, with `failures` failures before it.
    func backoff(after failure: UpstreamFailure, jitter: Double) -> TimeAmount {
        if failure == .noContent { return self.maxBackoff }
        let exponent = min(self.failures, 30)
        let raw = min(self.maxBackoff.nanoseconds, self.initialBackoff.nanoseconds << Int64(exponent))
        let capped = raw < 0 ? self.maxBackoff.nanoseconds : raw
        // Equal jitter: half fixed, half random, so replicas that lost the same upstream spread out.
        let jittered = capped / 2 + Int64(Double(capped / 2) * min(max(jitter, 0), 1))
        let floor = self.retryFloor?.nanoseconds ?? 0
        return .nanoseconds(max(jittered, floor))
    }
}
