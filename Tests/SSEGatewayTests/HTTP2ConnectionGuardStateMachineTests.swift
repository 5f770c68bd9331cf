import NIOHTTP2
import XCTest

@testable import SSEGateway

/// The HTTP/2 connection guard's stream count and idle timer as a plain value.
final class HTTP2ConnectionGuardStateMachineTests: XCTestCase {
    private typealias Machine = HTTP2ConnectionGuard.StateMachine

    func testTheIdleTimerRunsOnlyWhileNoStreamIsOpen() {
        var machine = Machine()
        XCTAssertEqual(machine.handlerAdded(channelActive: true), .armTimer, "no request yet: the timer runs")
        XCTAssertEqual(machine.state, .idle)
        XCTAssertEqual(machine.streamCreated(1), .cancelTimer)
        XCTAssertEqual(machine.streamCreated(3), .none)
        XCTAssertEqual(machine.state, .busy(openStreams: 2))
        XCTAssertEqual(machine.streamClosed(1), .none, "one stream still open")
        XCTAssertEqual(machine.streamClosed(3), .armTimer, "the last stream ended: idle again")
        XCTAssertEqual(machine.state, .idle)
        XCTAssertEqual(machine.streamCreated(5), .cancelTimer)
        XCTAssertEqual(machine.timerFired(), .none, "a timer due in the tick the stream cancelled it")
        XCTAssertEqual(machine.streamClosed(5), .armTimer)
        XCTAssertEqual(machine.timerFired(), .sendGoAwayAndClose(lastStreamID: 5))
        XCTAssertEqual(machine.state, .closed(openStreams: 0))
        XCTAssertEqual(machine.timerFired(), .none, "once")
    }

    func testAHandlerAddedBeforeTheChannelIsActiveArmsOnActivation() {
        var machine = Machine()
        XCTAssertEqual(machine.handlerAdded(channelActive: false), .none)
        XCTAssertEqual(machine.state, .waitingForActive)
        XCTAssertEqual(machine.channelActive(), .armTimer)
        XCTAssertEqual(machine.state, .idle)
    }

    func testTheLastStreamIDIsTheHighestOpened() {
        var machine = Machine()
        _ = machine.handlerAdded(channelActive: true)
        _ = machine.streamCreated(7)
        _ = machine.streamCreated(3)
        XCTAssertEqual(machine.lastStreamID, 7)
        _ = machine.streamClosed(7)
        _ = machine.streamClosed(3)
        XCTAssertEqual(machine.timerFired(), .sendGoAwayAndClose(lastStreamID: 7))
    }

    /// The HTTP/2 handler closes the open streams after the connection went inactive: they are still
    /// counted, exactly, and no timer is armed for a closed connection.
    func testStreamsCloseAfterTheConnectionWentInactive() {
        var machine = Machine()
        _ = machine.handlerAdded(channelActive: true)
        _ = machine.streamCreated(1)
        _ = machine.streamCreated(3)
        XCTAssertEqual(machine.stopped(), .cancelTimer)
        XCTAssertEqual(machine.state, .closed(openStreams: 2))
        XCTAssertEqual(machine.stopped(), .cancelTimer, "inactive and removed both come")
        XCTAssertEqual(machine.streamClosed(1), .none)
        XCTAssertEqual(machine.streamClosed(3), .none, "no timer for a closed connection")
        XCTAssertEqual(machine.state, .closed(openStreams: 0))
    }

    func testAStreamOpenedWhileTheGoAwayIsOnItsWayIsCounted() {
        var machine = Machine()
        _ = machine.handlerAdded(channelActive: true)
        _ = machine.timerFired()
        XCTAssertEqual(machine.streamCreated(1), .none)
        XCTAssertEqual(machine.state, .closed(openStreams: 1))
        XCTAssertEqual(machine.streamClosed(1), .none)
        XCTAssertEqual(machine.state, .closed(openStreams: 0))
    }
}
