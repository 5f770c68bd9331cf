import NIOCore
import XCTest

@testable import SSEGateway

final class UpstreamStateMachineTests: XCTestCase {
    /// The clock of these tests: streams start and end at explicit moments.
    private let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)

    func testConnectStreamFailReconnectCycle() {
        var machine = UpstreamStateMachine(initialBackoff: .milliseconds(100), maxBackoff: .seconds(10))
        XCTAssertTrue(machine.start().isConnect)
        XCTAssertEqual(machine.start(), .none, "start is idempotent")
        XCTAssertTrue(machine.started(at: self.t0).logsConnect, "first connect is logged")
        XCTAssertEqual(machine.state, .streaming(machine.current))
        let action = machine.fail(.closed, jitter: 1, at: self.t0)
        XCTAssertEqual(action.delay, .milliseconds(100))
        XCTAssertTrue(action.logsLoss)
        XCTAssertEqual(machine.state, .waiting(attempt: 1))
        XCTAssertTrue(machine.retryTimerFired().isConnect)
        guard case .connecting(_, attempt: 1) = machine.state else {
            return XCTFail("expected connecting, attempt 1, got \(machine.state)")
        }
    }

    func testBackoffDoublesWithEqualJitterUpToTheMaximum() {
        var machine = UpstreamStateMachine(initialBackoff: .milliseconds(100), maxBackoff: .milliseconds(1000))
        _ = machine.start()
        var delays: [Int64] = []
        for _ in 0..<6 {
            let action = machine.fail(.connectFailed("refused"), jitter: 1, at: self.t0)
            guard let delay = action.delay else {
                return XCTFail("expected a reconnect, got \(action)")
            }
            delays.append(delay.nanoseconds / 1_000_000)
            _ = machine.retryTimerFired()
        }
        XCTAssertEqual(delays, [100, 200, 400, 800, 1000, 1000])
        var low = UpstreamStateMachine(initialBackoff: .milliseconds(100), maxBackoff: .milliseconds(1000))
        _ = low.start()
        XCTAssertEqual(
            low.fail(.connectFailed("x"), jitter: 0, at: self.t0).delay,
            .milliseconds(50),
            "jitter 0 gives half"
        )
    }

    func testLogsOncePerStateChangeNotPerTry() {
        var machine = UpstreamStateMachine(initialBackoff: .milliseconds(1), maxBackoff: .milliseconds(10))
        _ = machine.start()
        XCTAssertTrue(machine.fail(.connectFailed("refused"), jitter: 0.5, at: self.t0).logsLoss)
        _ = machine.retryTimerFired()
        XCTAssertFalse(machine.fail(.connectFailed("refused again"), jitter: 0.5, at: self.t0).logsLoss)
        _ = machine.retryTimerFired()
        XCTAssertTrue(
            machine.fail(.status(500), jitter: 0.5, at: self.t0).logsLoss,
            "a new kind of failure is logged"
        )
        _ = machine.retryTimerFired()
        XCTAssertTrue(machine.started(at: self.t0).logsConnect, "recovery is logged")
        XCTAssertTrue(machine.fail(.closed, jitter: 0.5, at: self.t0).logsLoss)
        _ = machine.retryTimerFired()
        XCTAssertTrue(machine.started(at: self.t0).logsConnect, "connected again after a loss is a state change")
    }

    func testUpstreamRetryIsAFloorAnd204WaitsTheMaximum() {
        var machine = UpstreamStateMachine(initialBackoff: .milliseconds(100), maxBackoff: .seconds(30))
        _ = machine.start()
        _ = machine.started(at: self.t0)
        machine.upstreamRetry(milliseconds: 5000, on: machine.current)
        XCTAssertEqual(machine.fail(.closed, jitter: 0, at: self.t0).delay, .seconds(5))
        _ = machine.retryTimerFired()
        XCTAssertEqual(machine.fail(.noContent, jitter: 0, at: self.t0).delay, .seconds(30))
        _ = machine.retryTimerFired()
        _ = machine.started(at: self.t0)
        machine.upstreamRetry(milliseconds: 86_400_000, on: machine.current)
        XCTAssertEqual(
            machine.fail(.closed, jitter: 0, at: self.t0).delay,
            .seconds(30),
            "the floor never exceeds backoff.max"
        )
    }

    func testBackoffStartsOverOnlyAfterAStreamStayedUpForResetAfter() {
        var machine = UpstreamStateMachine(
            initialBackoff: .milliseconds(100),
            maxBackoff: .seconds(10),
            resetAfter: .seconds(30)
        )
        _ = machine.start()
        _ = machine.fail(.connectFailed("x"), jitter: 1, at: self.t0)
        _ = machine.retryTimerFired()
        _ = machine.started(at: self.t0)
        // Accepted and closed at once: keep backing off.
        XCTAssertEqual(machine.fail(.closed, jitter: 1, at: self.t0).delay, .milliseconds(200))
        _ = machine.retryTimerFired()
        _ = machine.started(at: self.t0)
        // A flapping upstream: two events, then the stream breaks after a second. Events alone prove nothing.
        XCTAssertEqual(
            machine.fail(.error("bad chunk"), jitter: 1, at: self.t0 + .seconds(1)).delay,
            .milliseconds(400),
            "a stream shorter than reset_after does not reset the backoff"
        )
        _ = machine.retryTimerFired()
        _ = machine.started(at: self.t0 + .seconds(2))
        XCTAssertEqual(
            machine.fail(.closed, jitter: 1, at: self.t0 + .seconds(2) + .milliseconds(29_999)).delay,
            .milliseconds(800),
            "just under reset_after still counts as a failure in a row"
        )
        _ = machine.retryTimerFired()
        _ = machine.started(at: self.t0 + .seconds(40))
        XCTAssertEqual(
            machine.fail(.closed, jitter: 1, at: self.t0 + .seconds(70)).delay,
            .milliseconds(100),
            "a stream up for reset_after starts the backoff over"
        )
        // Connection failures after that grow from the start again.
        _ = machine.retryTimerFired()
        XCTAssertEqual(
            machine.fail(.connectFailed("x"), jitter: 1, at: self.t0 + .seconds(71)).delay,
            .milliseconds(200)
        )
    }

    func testUpstreamRetryFloorEndsWithTheNextConnectionThatDoesNotRepeatIt() {
        var machine = UpstreamStateMachine(
            initialBackoff: .milliseconds(100),
            maxBackoff: .seconds(30),
            resetAfter: .seconds(1)
        )
        _ = machine.start()
        _ = machine.started(at: self.t0)
        machine.upstreamRetry(milliseconds: 20_000, on: machine.current)
        XCTAssertEqual(
            machine.fail(.closed, jitter: 0, at: self.t0 + .seconds(5)).delay,
            .seconds(20)
        )
        // Refused connects come after the connection that sent it: the floor holds.
        _ = machine.retryTimerFired()
        XCTAssertEqual(
            machine.fail(.connectFailed("x"), jitter: 0, at: self.t0 + .seconds(26)).delay,
            .seconds(20)
        )
        // A new stream that does not repeat it: back to the plain backoff.
        _ = machine.retryTimerFired()
        _ = machine.started(at: self.t0 + .seconds(50))
        XCTAssertNil(machine.retryFloor)
        XCTAssertEqual(
            machine.fail(.closed, jitter: 0, at: self.t0 + .seconds(60)).delay,
            .milliseconds(50)
        )
        // A stream that repeats it sets it again.
        _ = machine.retryTimerFired()
        _ = machine.started(at: self.t0 + .seconds(61))
        machine.upstreamRetry(milliseconds: 20_000, on: machine.current)
        XCTAssertEqual(
            machine.fail(.closed, jitter: 0, at: self.t0 + .seconds(70)).delay,
            .seconds(20)
        )
    }

    /// A backend that keeps accepting and dropping streams logs its first two cycles, then nothing until a
    /// stream stays up for reset_after (or it fails in a new way), not two lines per reconnect.
    func testAFlappingUpstreamIsLoggedAsOneStateUntilAStreamStaysUp() {
        var machine = UpstreamStateMachine(
            initialBackoff: .milliseconds(100),
            maxBackoff: .seconds(10),
            resetAfter: .seconds(30)
        )
        var now = self.t0
        var lines = 0
        func cycle(_ failure: UpstreamFailure = .closed, upFor: TimeAmount = .seconds(1)) {
            if machine.started(at: now).logsConnect { lines += 1 }
            now = now + upFor
            if machine.fail(failure, jitter: 1, at: now).logsLoss { lines += 1 }
            _ = machine.retryTimerFired()
        }
        _ = machine.start()
        cycle()
        cycle()
        XCTAssertTrue(machine.isFlapping)
        XCTAssertEqual(lines, 4, "connected, lost, connected, lost (flapping)")
        for _ in 0..<20 { cycle() }
        XCTAssertEqual(lines, 4, "no line per reconnect while flapping")
        cycle(.error("bad chunk"))
        XCTAssertEqual(lines, 5, "a loss of a new kind is still logged")
        // A stream that stays up: the timer at reset_after ends the spell, with one line; the backoff starts over.
        XCTAssertFalse(machine.started(at: now).logsConnect)
        XCTAssertFalse(machine.stayedUp(at: now + .seconds(29)), "too early")
        XCTAssertTrue(machine.stayedUp(at: now + .seconds(30)))
        XCTAssertFalse(machine.isFlapping)
        XCTAssertEqual(machine.failures, 0)
        XCTAssertTrue(machine.fail(.closed, jitter: 1, at: now + .minutes(2)).logsLoss, "the next loss is news")
        XCTAssertEqual(machine.state, .waiting(attempt: 1))
        _ = machine.retryTimerFired()
        XCTAssertTrue(machine.started(at: now + .minutes(3)).logsConnect, "and so is the next connect")
    }

    func testAStopAfterAHealthyStreamStartsTheNextRunAtTheInitialBackoff() {
        var machine = UpstreamStateMachine(
            initialBackoff: .milliseconds(100),
            maxBackoff: .seconds(10),
            resetAfter: .seconds(30)
        )
        _ = machine.start()
        for _ in 0..<3 {
            _ = machine.fail(.connectFailed("x"), jitter: 1, at: self.t0)
            _ = machine.retryTimerFired()
        }
        _ = machine.started(at: self.t0)
        XCTAssertEqual(machine.stop(at: self.t0 + .seconds(5)), .close)
        XCTAssertTrue(machine.start().isConnect)
        XCTAssertEqual(
            machine.fail(.connectFailed("x"), jitter: 1, at: self.t0 + .seconds(6)).delay,
            .milliseconds(800),
            "a short stream proves nothing"
        )
        _ = machine.retryTimerFired()
        _ = machine.started(at: self.t0 + .seconds(7))
        XCTAssertEqual(machine.stop(at: self.t0 + .minutes(5)), .close)
        XCTAssertTrue(machine.start().isConnect)
        XCTAssertEqual(
            machine.fail(.connectFailed("x"), jitter: 1, at: self.t0 + .minutes(6)).delay,
            .milliseconds(100)
        )
    }

    func testStopFromAnyState() {
        var machine = UpstreamStateMachine(initialBackoff: .milliseconds(100), maxBackoff: .seconds(10))
        XCTAssertEqual(machine.stop(), .none)
        XCTAssertTrue(machine.start().isConnect)
        let stopped = machine.current
        XCTAssertEqual(machine.stop(), .close)
        XCTAssertEqual(machine.state, .stopped)
        XCTAssertEqual(
            machine.failed(.closed, on: stopped, jitter: 0, at: self.t0),
            .none,
            "late failures after stop are ignored"
        )
        XCTAssertEqual(machine.retryTimerFired(), .none)
        XCTAssertTrue(machine.start().isConnect, "an on-demand feed starts again")
    }
}

extension UpstreamStateMachineTests {
    /// Inputs from a connection that a failure, a stop or a restart has ended are recognised by the machine
    /// (they name their connection) and answered with `.none`, whatever state it is in now.
    func testInputsFromAStaleConnectionAreIgnored() {
        var machine = UpstreamStateMachine(initialBackoff: .milliseconds(100), maxBackoff: .seconds(10))
        guard case .connect(let first) = machine.start() else { return XCTFail("expected a connect") }
        XCTAssertEqual(machine.channelConnected(first), .adoptChannel)
        XCTAssertNotEqual(machine.streamStarted(first, at: self.t0), .none)
        XCTAssertEqual(machine.eventsReceived(first), .deliver)
        XCTAssertNotEqual(machine.failed(.closed, on: first, jitter: 0, at: self.t0), .none)
        // Waiting: the ended connection's late reports change nothing.
        XCTAssertEqual(machine.failed(.error("reset"), on: first, jitter: 0, at: self.t0), .none)
        XCTAssertEqual(machine.eventsReceived(first), .none)
        XCTAssertEqual(machine.stableTimerFired(first, at: self.t0 + .minutes(1)), .none)
        XCTAssertEqual(machine.state, .waiting(attempt: 1))
        guard case .connect(let second) = machine.retryTimerFired() else { return XCTFail("expected a connect") }
        XCTAssertNotEqual(first, second, "each attempt is a new connection")
        // Connecting the second: the first one's inputs are still stale.
        XCTAssertEqual(machine.channelConnected(first), .closeStaleChannel)
        XCTAssertEqual(machine.streamStarted(first, at: self.t0), .none)
        XCTAssertEqual(machine.failed(.closed, on: first, jitter: 0, at: self.t0), .none)
        machine.upstreamRetry(milliseconds: 5000, on: first)
        XCTAssertNil(machine.retryFloor, "a stale connection's retry: sets no floor")
        guard case .connecting(second, attempt: 1) = machine.state else {
            return XCTFail("the stale inputs moved the machine: \(machine.state)")
        }
        // A restart (stop + start) ends the second connection too.
        _ = machine.streamStarted(second, at: self.t0)
        XCTAssertEqual(machine.stop(), .close)
        guard case .connect(let third) = machine.start() else { return XCTFail("expected a connect") }
        XCTAssertEqual(machine.channelConnected(second), .closeStaleChannel)
        XCTAssertEqual(machine.eventsReceived(second), .none)
        XCTAssertEqual(machine.stableTimerFired(second, at: self.t0 + .minutes(1)), .none)
        XCTAssertEqual(machine.failed(.idleTimeout, on: second, jitter: 0, at: self.t0), .none)
        XCTAssertEqual(machine.channelConnected(third), .adoptChannel)
        XCTAssertEqual(machine.state, .connecting(third, attempt: 1))
    }

    /// The machine says what to log and at which level; the client only writes the lines.
    func testLogActionsNameTheLineAndItsLevel() {
        var machine = UpstreamStateMachine(
            initialBackoff: .milliseconds(100),
            maxBackoff: .seconds(10),
            resetAfter: .seconds(30)
        )
        _ = machine.start()
        XCTAssertEqual(
            machine.fail(.connectFailed("refused"), jitter: 1, at: self.t0),
            .reconnect(
                after: .milliseconds(100),
                logs: [
                    .init(.warning, "upstream lost", metadata: ["reason": "connect failed: refused"]),
                    .init(.debug, "upstream reconnecting", metadata: ["in": "100ms"]),
                ]
            )
        )
        XCTAssertEqual(
            machine.fail(.connectFailed("refused"), jitter: 1, at: self.t0),
            .none,
            "no input from a connection while waiting"
        )
        _ = machine.retryTimerFired()
        XCTAssertEqual(
            machine.fail(.noContent, jitter: 1, at: self.t0),
            .reconnect(
                after: .seconds(10),
                logs: [
                    .init(.notice, "upstream lost", metadata: ["reason": "status 204 (backend asked to stop)"]),
                    .init(.debug, "upstream reconnecting", metadata: ["in": "10000ms"]),
                ]
            ),
            "204 is the backend's wish, not a fault: notice"
        )
        _ = machine.retryTimerFired()
        let id = machine.current
        XCTAssertEqual(
            machine.streamStarted(id, at: self.t0),
            .streamStarted(id, stableAfter: .seconds(30), log: .init(.info, "upstream connected"))
        )
        // Two short streams: flapping, said once in the loss line.
        _ = machine.fail(.closed, jitter: 1, at: self.t0 + .seconds(1))
        _ = machine.retryTimerFired()
        _ = machine.started(at: self.t0 + .seconds(2))
        let loss = machine.fail(.error("bad chunk"), jitter: 1, at: self.t0 + .seconds(3))
        guard case .reconnect(_, let logs) = loss else { return XCTFail("expected a reconnect, got \(loss)") }
        XCTAssertEqual(logs.first?.level, .warning)
        XCTAssertNotNil(logs.first?.metadata["flapping"])
        _ = machine.retryTimerFired()
        let stable = machine.current
        XCTAssertEqual(
            machine.streamStarted(stable, at: self.t0 + .seconds(4)),
            .streamStarted(stable, stableAfter: .seconds(30), log: nil),
            "connects while flapping are not logged"
        )
        XCTAssertEqual(
            machine.stableTimerFired(stable, at: self.t0 + .seconds(34)),
            .log(.init(.info, "upstream connected and stable again"))
        )
        XCTAssertEqual(machine.stableTimerFired(stable, at: self.t0 + .seconds(64)), .none, "said once")
    }
}

extension UpstreamStateMachine {
    /// The connection the tests' inputs come from: the current one.
    fileprivate var current: ConnectionID {
        guard let connection = self.state.connection else { preconditionFailure("no connection in \(self.state)") }
        return connection
    }

    fileprivate mutating func fail(_ failure: UpstreamFailure, jitter: Double, at now: NIODeadline) -> Action {
        guard let connection = self.state.connection else { return .none }
        return self.failed(failure, on: connection, jitter: jitter, at: now)
    }

    fileprivate mutating func started(at now: NIODeadline) -> Action {
        self.streamStarted(self.current, at: now)
    }

    /// The `reset_after` timer of the current stream fired; true when that is worth a line.
    fileprivate mutating func stayedUp(at now: NIODeadline) -> Bool {
        if case .log = self.stableTimerFired(self.current, at: now) { return true }
        return false
    }
}

extension UpstreamStateMachine.Action {
    fileprivate var isConnect: Bool {
        if case .connect = self { return true }
        return false
    }

    /// The backoff of a `.reconnect`.
    fileprivate var delay: TimeAmount? {
        if case .reconnect(let delay, _) = self { return delay }
        return nil
    }

    /// A `.reconnect` that logs the loss (a new state for the operator).
    fileprivate var logsLoss: Bool {
        guard case .reconnect(_, let logs) = self else { return false }
        return logs.contains { $0.message == "upstream lost" && $0.level >= .notice }
    }

    /// A `.streamStarted` that logs the connect.
    fileprivate var logsConnect: Bool {
        guard case .streamStarted(_, _, let log) = self else { return false }
        return log != nil
    }
}
