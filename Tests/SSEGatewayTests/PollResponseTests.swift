import NIOCore
import XCTest

@testable import SSEGateway

/// `PollResponse` as a plain value: when a poll answers, waits, gathers, and what late timers do.
final class PollResponseTests: XCTestCase {
    private func machine() -> PollResponse {
        PollResponse(timeout: .milliseconds(300), gather: .milliseconds(50))
    }

    func testContentAtJoinAnswersAtOnce() {
        var poll = self.machine()
        XCTAssertEqual(poll.joined(hasContent: true), .answer)
        XCTAssertEqual(poll.state, .done)
        XCTAssertEqual(poll.clientLeft(), .none, "answered: nothing left to free")
    }

    func testNothingAtJoinWaitsThenGathersThenAnswers() {
        var poll = self.machine()
        XCTAssertEqual(poll.joined(hasContent: false), .armTimeout(.milliseconds(300)))
        XCTAssertEqual(poll.batchArrived(), .armGather(.milliseconds(50)))
        XCTAssertEqual(poll.batchArrived(), .none, "a burst joins the gathering response")
        XCTAssertEqual(poll.timeoutFired(), .none, "the gather timer answers, not the timeout")
        XCTAssertEqual(poll.gatherFired(), .answer)
        XCTAssertEqual(poll.state, .done)
        XCTAssertEqual(poll.gatherFired(), .none, "a timer that fired as it was cancelled")
        XCTAssertEqual(poll.timeoutFired(), .none)
    }

    func testTimeoutAnswersEmpty() {
        var poll = self.machine()
        _ = poll.joined(hasContent: false)
        XCTAssertEqual(poll.timeoutFired(), .answer)
        XCTAssertEqual(poll.ended(), .none)
    }

    func testZeroGatherStillAnswersFromTheTimerNotInsideTheBatch() {
        var poll = PollResponse(timeout: .seconds(1), gather: .zero)
        _ = poll.joined(hasContent: false)
        XCTAssertEqual(poll.batchArrived(), .armGather(.zero))
    }

    func testEndedAnswersWithWhatThereIs() {
        var waiting = self.machine()
        _ = waiting.joined(hasContent: false)
        XCTAssertEqual(waiting.ended(), .answer)
        var gathering = self.machine()
        _ = gathering.joined(hasContent: false)
        _ = gathering.batchArrived()
        XCTAssertEqual(gathering.ended(), .answer)
    }

    func testClientLeavingReleasesWithoutAnswer() {
        var waiting = self.machine()
        _ = waiting.joined(hasContent: false)
        XCTAssertEqual(waiting.clientLeft(), .release)
        XCTAssertEqual(waiting.timeoutFired(), .none)
        var gathering = self.machine()
        _ = gathering.joined(hasContent: false)
        _ = gathering.batchArrived()
        XCTAssertEqual(gathering.clientLeft(), .release)
        XCTAssertEqual(gathering.gatherFired(), .none)
        var joining = self.machine()
        XCTAssertEqual(joining.clientLeft(), .none)
    }
}
