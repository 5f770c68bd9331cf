import NIOCore
import XCTest

@testable import SSEGateway

final class UpstreamStateMachineTests: XCTestCase {
    /// The clock of these tests: streams start and end at explicit moments.
    private let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)

    func testConnectStreamFailReconnectCycle() {
        var machine = UpstreamStateMachine(initialBackoff: .milliseconds(100), maxBackoff: .seconds(10))
        XCTAssertEqual(machine.start(), .connect)
        XCTAssertEqual(machine.start(), .none, "start is idempotent")
        XCTAssertTrue(machine.streamStarted(at: self.t0), "first connect is logged")
        XCTAssertEqual(machine.state, .streaming)
        let (action, log) = machine.failed(.closed, jitter: 1, at: self.t0)
        XCTAssertEqual(action, .reconnectAfter(.milliseconds(100)))
        XCTAssertTrue(log)
        XCTAssertEqual(machine.state, .waiting(attempt: 1))
        XCTAssertEqual(machine.retryTimerFired(), .connect)
        XCTAssertEqual(machine.state, .connecting(attempt: 1))
    }

    func testBackoffDoublesWithEqualJitterUpToTheMaximum() {
        var machine = UpstreamStateMachine(initialBackoff: .milliseconds(100), maxBackoff: .milliseconds(1000))
        _ = machine.start()
        var delays: [Int64] = []
        for _ in 0..<6 {
            let (action, _) = machine.failed(.connectFailed("refused"), jitter: 1, at: self.t0)
            guard case .reconnectAfter(let delay) = action else {
                return XCTFail("expected a reconnect, got \(action)")
            }
            delays.append(delay.nanoseconds / 1_000_000)
            _ = machine.retryTimerFired()
        }
        XCTAssertEqual(delays, [100, 200, 400, 800, 1000, 1000])
        var low = UpstreamStateMachine(initialBackoff: .milliseconds(100), maxBackoff: .milliseconds(1000))
        _ = low.start()
        XCTAssertEqual(
            low.failed(.connectFailed("x"), jitter: 0, at: self.t0).action,
            .reconnectAfter(.milliseconds(50)),
            "jitter 0 gives half"
        )
    }

    func testLogsOncePerStateChangeNotPerTry() {
        var machine = UpstreamStateMachine(initialBackoff: .milliseconds(1), maxBackoff: .milliseconds(10))
        _ = machine.start()
        XCTAssertTrue(machine.failed(.connectFailed("refused"), jitter: 0.5, at: self.t0).logChange)
        _ = machine.retryTimerFired()
        XCTAssertFalse(machine.failed(.connectFailed("refused again"), jitter: 0.5, at: self.t0).logChange)
        _ = machine.retryTimerFired()
        XCTAssertTrue(
            machine.failed(.status(500), jitter: 0.5, at: self.t0).logChange,
            "a new kind of failure is logged"
        )
        _ = machine.retryTimerFired()
        XCTAssertTrue(machine.streamStarted(at: self.t0), "recovery is logged")
        XCTAssertTrue(machine.failed(.closed, jitter: 0.5, at: self.t0).logChange)
        _ = machine.retryTimerFired()
        XCTAssertTrue(machine.streamStarted(at: self.t0), "connected again after a loss is a state change")
    }

    func testUpstreamRetryIsAFloorAnd204WaitsTheMaximum() {
        var machine = UpstreamStateMachine(initialBackoff: .milliseconds(100), maxBackoff: .seconds(30))
        _ = machine.start()
        _ = machine.streamStarted(at: self.t0)
        machine.upstreamRetry(milliseconds: 5000)
        XCTAssertEqual(machine.failed(.closed, jitter: 0, at: self.t0).action, .reconnectAfter(.seconds(5)))
        _ = machine.retryTimerFired()
        XCTAssertEqual(machine.failed(.noContent, jitter: 0, at: self.t0).action, .reconnectAfter(.seconds(30)))
        _ = machine.retryTimerFired()
        _ = machine.streamStarted(at: self.t0)
        machine.upstreamRetry(milliseconds: 86_400_000)
        XCTAssertEqual(
            machine.failed(.closed, jitter: 0, at: self.t0).action,
            .reconnectAfter(.seconds(30)),
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
        _ = machine.failed(.connectFailed("x"), jitter: 1, at: self.t0)
        _ = machine.retryTimerFired()
        _ = machine.streamStarted(at: self.t0)
        // Accepted and closed at once: keep backing off.
        XCTAssertEqual(machine.failed(.closed, jitter: 1, at: self.t0).action, .reconnectAfter(.milliseconds(200)))
        _ = machine.retryTimerFired()
        _ = machine.streamStarted(at: self.t0)
        // A flapping upstream: two events, then the stream breaks after a second. Events alone prove nothing.
        XCTAssertEqual(
            machine.failed(.error("bad chunk"), jitter: 1, at: self.t0 + .seconds(1)).action,
            .reconnectAfter(.milliseconds(400)),
            "a stream shorter than reset_after does not reset the backoff"
        )
        _ = machine.retryTimerFired()
        _ = machine.streamStarted(at: self.t0 + .seconds(2))
        XCTAssertEqual(
            machine.failed(.closed, jitter: 1, at: self.t0 + .seconds(2) + .milliseconds(29_999)).action,
            .reconnectAfter(.milliseconds(800)),
            "just under reset_after still counts as a failure in a row"
        )
        _ = machine.retryTimerFired()
        _ = machine.streamStarted(at: self.t0 + .seconds(40))
        XCTAssertEqual(
            machine.failed(.closed, jitter: 1, at: self.t0 + .seconds(70)).action,
            .reconnectAfter(.milliseconds(100)),
            "a stream up for reset_after starts the backoff over"
        )
        // Connection failures after that grow from the start again.
        _ = machine.retryTimerFired()
        XCTAssertEqual(
            machine.failed(.connectFailed("x"), jitter: 1, at: self.t0 + .seconds(71)).action,
            .reconnectAfter(.milliseconds(200))
        )
    }

    func testUpstreamRetryFloorEndsWithTheNextConnectionThatDoesNotRepeatIt() {
        var machine = UpstreamStateMachine(
            initialBackoff: .milliseconds(100),
            maxBackoff: .seconds(30),
            resetAfter: .seconds(1)
        )
        _ = machine.start()
        _ = machine.streamStarted(at: self.t0)
        machine.upstreamRetry(milliseconds: 20_000)
        XCTAssertEqual(
            machine.failed(.closed, jitter: 0, at: self.t0 + .seconds(5)).action,
            .reconnectAfter(.seconds(20))
        )
        // Refused connects come after the connection that sent it: the floor holds.
        _ = machine.retryTimerFired()
        XCTAssertEqual(
            machine.failed(.connectFailed("x"), jitter: 0, at: self.t0 + .seconds(26)).action,
            .reconnectAfter(.seconds(20))
        )
        // A new stream that does not repeat it: back to the plain backoff.
        _ = machine.retryTimerFired()
        _ = machine.streamStarted(at: self.t0 + .seconds(50))
        XCTAssertNil(machine.retryFloor)
        XCTAssertEqual(
            machine.failed(.closed, jitter: 0, at: self.t0 + .seconds(60)).action,
            .reconnectAfter(.milliseconds(50))
        )
        // A stream that repeats it sets it again.
        _ = machine.retryTimerFired()
        _ = machine.streamStarted(at: self.t0 + .seconds(61))
        machine.upstreamRetry(milliseconds: 20_000)
        XCTAssertEqual(
            machine.failed(.closed, jitter: 0, at: self.t0 + .seconds(70)).action,
            .reconnectAfter(.seconds(20))
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
            if machine.streamStarted(at: now) { lines += 1 }
            now = now + upFor
            if machine.failed(failure, jitter: 1, at: now).logChange { lines += 1 }
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
        XCTAssertFalse(machine.streamStarted(at: now))
        XCTAssertFalse(machine.streamStayedUp(at: now + .seconds(29)), "too early")
        XCTAssertTrue(machine.streamStayedUp(at: now + .seconds(30)))
        XCTAssertFalse(machine.isFlapping)
        XCTAssertEqual(machine.failures, 0)
        XCTAssertTrue(machine.failed(.closed, jitter: 1, at: now + .minutes(2)).logChange, "the next loss is news")
        XCTAssertEqual(machine.state, .waiting(attempt: 1))
        _ = machine.retryTimerFired()
        XCTAssertTrue(machine.streamStarted(at: now + .minutes(3)), "and so is the next connect")
    }

    func testAStopAfterAHealthyStreamStartsTheNextRunAtTheInitialBackoff() {
        var machine = UpstreamStateMachine(
            initialBackoff: .milliseconds(100),
            maxBackoff: .seconds(10),
            resetAfter: .seconds(30)
        )
        _ = machine.start()
        for _ in 0..<3 {
            _ = machine.failed(.connectFailed("x"), jitter: 1, at: self.t0)
            _ = machine.retryTimerFired()
        }
        _ = machine.streamStarted(at: self.t0)
        XCTAssertEqual(machine.stop(at: self.t0 + .seconds(5)), .close)
        XCTAssertEqual(machine.start(), .connect)
        XCTAssertEqual(
            machine.failed(.connectFailed("x"), jitter: 1, at: self.t0 + .seconds(6)).action,
            .reconnectAfter(.milliseconds(800)),
            "a short stream proves nothing"
        )
        _ = machine.retryTimerFired()
        _ = machine.streamStarted(at: self.t0 + .seconds(7))
        XCTAssertEqual(machine.stop(at: self.t0 + .minutes(5)), .close)
        XCTAssertEqual(machine.start(), .connect)
        XCTAssertEqual(
            machine.failed(.connectFailed("x"), jitter: 1, at: self.t0 + .minutes(6)).action,
            .reconnectAfter(.milliseconds(100))
        )
    }

    func testStopFromAnyState() {
        var machine = UpstreamStateMachine(initialBackoff: .milliseconds(100), maxBackoff: .seconds(10))
        XCTAssertEqual(machine.stop(), .none)
        XCTAssertEqual(machine.start(), .connect)
        XCTAssertEqual(machine.stop(), .close)
        XCTAssertEqual(machine.state, .stopped)
        XCTAssertEqual(
            machine.failed(.closed, jitter: 0, at: self.t0).action,
            .none,
            "late failures after stop are ignored"
        )
        XCTAssertEqual(machine.retryTimerFired(), .none)
        XCTAssertEqual(machine.start(), .connect, "an on-demand feed starts again")
    }
}
