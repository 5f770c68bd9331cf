import Logging
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
/// Every connection attempt gets a `ConnectionID`, carried in `.connecting` and `.streaming`. Inputs
/// from a connection (its channel coming up, its response, its events, its end) name it; an input from
/// a connection that is no longer the current one (a stop, a failure or a restart came first) answers
/// `.none`, so `UpstreamClient` needs no counter of its own to tell stale callbacks apart.
///
/// Backoff is exponential from `initial` to `max` with equal jitter, and starts over only after a stream
/// stayed up for `resetAfter`: a backend that accepts, sends a few events and breaks the stream again is
/// backed off like one that refuses. The upstream's own `retry:` is a floor for the reconnects after the
/// connection that sent it (a later connection that does not repeat it clears it); `204` waits the maximum.
///
/// Logging is decided here too: the actions carry the lines (`Log`) and the client writes them. A line is
/// logged only when the state an operator cares about changed (connected, or a failure of a new kind). A
/// flapping upstream (two streams in a row that ended before `resetAfter`) is one state: its further
/// connects and losses of the same kind are not logged until a stream stays up for `resetAfter`
/// (`stableTimerFired`).
public struct UpstreamStateMachine {
    /// The identity of one connection attempt; a new one per `.connect` action.
    public struct ConnectionID: Hashable, Sendable, CustomStringConvertible {
        let value: Int

        public var description: String { "connection \(self.value)" }
    }

    public enum State: Equatable, Sendable {
        case idle
        case connecting(ConnectionID, attempt: Int)
        case streaming(ConnectionID)
        case waiting(attempt: Int)
        case stopped

        /// The connection whose inputs count; nil when none is open.
        public var connection: ConnectionID? {
            switch self {
            case .connecting(let id, _), .streaming(let id): return id
            case .idle, .waiting, .stopped: return nil
            }
        }

        /// Connecting, streaming or waiting to reconnect (not idle, not stopped).
        public var isRunning: Bool {
            switch self {
            case .connecting, .streaming, .waiting: return true
            case .idle, .stopped: return false
            }
        }
    }

    /// One log line: what to log at which level. The machine decides; `UpstreamClient` writes it.
    public struct Log: Equatable, Sendable {
        public var level: Logger.Level
        public var message: String
        public var metadata: [String: String]

        public init(_ level: Logger.Level, _ message: String, metadata: [String: String] = [:]) {
            self.level = level
            self.message = message
            self.metadata = metadata
        }
    }

    public enum Action: Equatable, Sendable {
        case none
        /// Open connection `id` with a fresh parser (the request carries `Last-Event-ID`).
        case connect(ConnectionID)
        /// The current connection's channel is up: keep it, to close it when the connection ends.
        case adoptChannel
        /// The channel of a connection that is no longer current came up: close it.
        case closeStaleChannel
        /// The current connection streams: write `log` (if any) and fire `stableTimerFired` for `id` after
        /// `stableAfter`.
        case streamStarted(ConnectionID, stableAfter: TimeAmount, log: Log?)
        /// Hand the events to the feed.
        case deliver
        case log(Log)
        /// Close the current connection, write `logs`, and fire `retryTimerFired` after `after`.
        case reconnect(after: TimeAmount, logs: [Log])
        /// Close the current connection (if any) and cancel the timers; nothing more.
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
    private var connectionsMade = 0

    /// Streams keep ending soon after they start: connects and same-kind losses are no longer logged.
    public var isFlapping: Bool { self.shortStreams >= 2 }

    public init(initialBackoff: TimeAmount, maxBackoff: TimeAmount, resetAfter: TimeAmount = .seconds(10)) {
        self.initialBackoff = initialBackoff
        self.maxBackoff = max(initialBackoff, maxBackoff)
        self.resetAfter = resetAfter
    }

    private mutating func newConnection(attempt: Int) -> Action {
        self.connectionsMade += 1
        let id = ConnectionID(value: self.connectionsMade)
        self.state = .connecting(id, attempt: attempt)
        return .connect(id)
    }

    /// A client wants the stream (idempotent while running).
    public mutating func start() -> Action {
        switch self.state {
        case .idle, .stopped:
            return self.newConnection(attempt: self.failures)
        case .connecting, .streaming, .waiting:
            return .none
        }
    }

    /// The channel of `connection` is connected.
    public mutating func channelConnected(_ connection: ConnectionID) -> Action {
        self.state.connection == connection ? .adoptChannel : .closeStaleChannel
    }

    /// A 2xx `text/event-stream` response arrived at `now` on `connection`.
    ///
    /// A `retry:` of an earlier connection stops being a floor here: only a connection that sends it
    /// again (after this point) sets it again, so one huge value does not stretch every later reconnect.
    public mutating func streamStarted(_ connection: ConnectionID, at now: NIODeadline) -> Action {
        switch self.state {
        case .connecting(let current, _) where current == connection:
            self.state = .streaming(connection)
            self.streamingSince = now
            self.retryFloor = nil
            var log: Log?
            // While flapping the connect is not news (and the loss of this stream, if short, neither).
            if !self.isFlapping, self.lastReportedKind != -1 {
                self.lastReportedKind = -1
                log = Log(.info, "upstream connected")
            }
            return .streamStarted(connection, stableAfter: self.resetAfter, log: log)
        case .streaming(let current) where current == connection:
            preconditionFailure("invalid transition \(self.state) on streamStarted(\(connection))")
        case .idle, .connecting, .streaming, .waiting, .stopped:
            return .none
        }
    }

    /// The current stream has been up for `resetAfter` (the timer of `.streamStarted`): the upstream is
    /// healthy again, so the backoff starts over now. Logs when this ends a flapping spell (the connects
    /// during the spell were not logged).
    public mutating func stableTimerFired(_ connection: ConnectionID, at now: NIODeadline) -> Action {
        guard case .streaming(let current) = self.state, current == connection, let since = self.streamingSince,
            now - since >= self.resetAfter
        else { return .none }
        self.failures = 0
        let wasFlapping = self.isFlapping
        self.shortStreams = 0
        guard wasFlapping else { return .none }
        self.lastReportedKind = -1
        return .log(Log(.info, "upstream connected and stable again"))
    }

    /// Events of one read burst arrived on `connection`.
    public func eventsReceived(_ connection: ConnectionID) -> Action {
        switch self.state {
        case .streaming(let current) where current == connection:
            return .deliver
        case .connecting(let current, _) where current == connection:
            // The handler parses the body only after it reported the response (`streamStarted`).
            preconditionFailure("invalid transition \(self.state) on eventsReceived(\(connection))")
        case .idle, .connecting, .streaming, .waiting, .stopped:
            return .none
        }
    }

    /// The upstream's `retry:` on `connection`, a floor for the backoff but never above `maxBackoff`.
    public mutating func upstreamRetry(milliseconds: Int, on connection: ConnectionID) {
        guard self.state.connection == connection else { return }
        self.retryFloor = min(.milliseconds(Int64(min(milliseconds, 86_400_000))), self.maxBackoff)
    }

    /// `connection` failed or ended at `now`. `jitter` is a uniform random number in [0, 1).
    public mutating func failed(
        _ failure: UpstreamFailure,
        on connection: ConnectionID,
        jitter: Double,
        at now: NIODeadline
    ) -> Action {
        switch self.state {
        case .streaming(let current) where current == connection:
            // Only a stream that stayed up long enough proves the upstream healthy; events alone do not,
            // or a backend that sends two events and breaks the stream would be retried at `initial` forever.
            if let since = self.streamingSince, now - since >= self.resetAfter {
                self.failures = 0
                self.shortStreams = 0
            } else {
                self.shortStreams += 1
            }
            self.streamingSince = nil
        case .connecting(let current, _) where current == connection:
            break
        case .idle, .connecting, .streaming, .waiting, .stopped:
            // A connection that a stop, an earlier failure or a restart already ended.
            return .none
        }
        var logs: [Log] = []
        if self.lastReportedKind != failure.kind {
            var metadata = ["reason": "\(failure)"]
            if self.isFlapping {
                metadata["flapping"] = "streams end within reset_after; logged again once one stays up"
            }
            logs.append(Log(failure == .noContent ? .notice : .warning, "upstream lost", metadata: metadata))
        }
        self.lastReportedKind = failure.kind
        let delay = self.backoff(after: failure, jitter: jitter)
        self.failures += 1
        self.state = .waiting(attempt: self.failures)
        logs.append(Log(.debug, "upstream reconnecting", metadata: ["in": "\(delay.nanoseconds / 1_000_000)ms"]))
        return .reconnect(after: delay, logs: logs)
    }

    /// The backoff of `.reconnect` is over. A timer that fires after a stop is ignored.
    public mutating func retryTimerFired() -> Action {
        guard case .waiting(let attempt) = self.state else { return .none }
        return self.newConnection(attempt: attempt)
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
