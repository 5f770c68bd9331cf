import NIOCore
@testable import SSEGateway
import XCTest

final class UpstreamStateMachineTests: XCTestCase {
    func testConnectStreamFailReconnectCycle() {
        var machine = UpstreamStateMachine(initialBackoff: .milliseconds(100), maxBackoff: .seconds(10))
        XCTAssertEqual(machine.start(), .connect)
        XCTAssertEqual(machine.start(), .none, "start is idempotent")
        XCTAssertTrue(machine.streamStarted(), "first connect is logged")
        XCTAssertEqual(machine.state, .streaming)
        machine.receivedEvent()
        let (action, log) = machine.failed(.closed, jitter: 1)
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
            let (action, _) = machine.failed(.connectFailed("refused"), jitter: 1)
            guard case .reconnectAfter(let delay) = action else { return XCTFail("expected a reconnect, got \(action)") }
            delays.append(delay.nanoseconds / 1_000_000)
            _ = machine.retryTimerFired()
        }
        XCTAssertEqual(delays, [100, 200, 400, 800, 1000, 1000])
        var low = UpstreamStateMachine(initialBackoff: .milliseconds(100), maxBackoff: .milliseconds(1000))
        _ = low.start()
        XCTAssertEqual(low.failed(.connectFailed("x"), jitter: 0).action, .reconnectAfter(.milliseconds(50)), "jitter 0 gives half")
    }

    func testLogsOncePerStateChangeNotPerTry() {
        var machine = UpstreamStateMachine(initialBackoff: .milliseconds(1), maxBackoff: .milliseconds(10))
        _ = machine.start()
        XCTAssertTrue(machine.failed(.connectFailed("refused"), jitter: 0.5).logChange)
        _ = machine.retryTimerFired()
        XCTAssertFalse(machine.failed(.connectFailed("refused again"), jitter: 0.5).logChange)
        _ = machine.retryTimerFired()
        XCTAssertTrue(machine.failed(.status(500), jitter: 0.5).logChange, "a new kind of failure is logged")
        _ = machine.retryTimerFired()
        XCTAssertTrue(machine.streamStarted(), "recovery is logged")
        XCTAssertTrue(machine.failed(.closed, jitter: 0.5).logChange)
        _ = machine.retryTimerFired()
        XCTAssertTrue(machine.streamStarted(), "connected again after a loss is a state change")
    }

    func testUpstreamRetryIsAFloorAnd204WaitsTheMaximum() {
        var machine = UpstreamStateMachine(initialBackoff: .milliseconds(100), maxBackoff: .seconds(30))
        _ = machine.start()
        _ = machine.streamStarted()
        machine.upstreamRetry(milliseconds: 5000)
        XCTAssertEqual(machine.failed(.closed, jitter: 0).action, .reconnectAfter(.seconds(5)))
        _ = machine.retryTimerFired()
        XCTAssertEqual(machine.failed(.noContent, jitter: 0).action, .reconnectAfter(.seconds(30)))
        _ = machine.retryTimerFired()
        _ = machine.streamStarted()
        machine.upstreamRetry(milliseconds: 86_400_000)
        XCTAssertEqual(machine.failed(.closed, jitter: 0).action, .reconnectAfter(.seconds(30)), "the floor never exceeds backoff.max")
    }

    func testBackoffStartsOverOnlyAfterAStreamDeliveredAnEvent() {
        var machine = UpstreamStateMachine(initialBackoff: .milliseconds(100), maxBackoff: .seconds(10))
        _ = machine.start()
        _ = machine.failed(.connectFailed("x"), jitter: 1)
        _ = machine.retryTimerFired()
        _ = machine.streamStarted()
        // Accepted and closed at once, without an event (comments or retry alone do not count): keep backing off.
        XCTAssertEqual(machine.failed(.closed, jitter: 1).action, .reconnectAfter(.milliseconds(200)))
        _ = machine.retryTimerFired()
        _ = machine.streamStarted()
        machine.receivedEvent()
        XCTAssertEqual(machine.failed(.closed, jitter: 1).action, .reconnectAfter(.milliseconds(100)))
    }

    func testStopFromAnyState() {
        var machine = UpstreamStateMachine(initialBackoff: .milliseconds(100), maxBackoff: .seconds(10))
        XCTAssertEqual(machine.stop(), .none)
        XCTAssertEqual(machine.start(), .connect)
        XCTAssertEqual(machine.stop(), .close)
        XCTAssertEqual(machine.state, .stopped)
        XCTAssertEqual(machine.failed(.closed, jitter: 0).action, .none, "late failures after stop are ignored")
        XCTAssertEqual(machine.retryTimerFired(), .none)
        XCTAssertEqual(machine.start(), .connect, "an on-demand feed starts again")
    }
}
