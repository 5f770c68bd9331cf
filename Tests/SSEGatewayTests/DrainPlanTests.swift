import NIOCore
import XCTest

@testable import SSEGateway

/// `DrainPlan` as a plain value: clients are numbers, time is explicit.
final class DrainPlanTests: XCTestCase {
    private let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)

    private func entry(_ client: Int, at offset: TimeAmount) -> DrainPlan<Int>.Entry {
        .init(client: client, closeAt: self.t0 + offset)
    }

    func testAnEmptyDrainFinishesAtOnce() {
        var plan = DrainPlan<Int>()
        XCTAssertEqual(plan.state, .idle)
        XCTAssertEqual(plan.begin([], window: .seconds(5)), .finish)
        XCTAssertEqual(plan.state, .finished)
        XCTAssertEqual(plan.remaining, 0)
    }

    func testClientsCloseInTheOrderOfTheirTimesAsTheTimerPasses() {
        var plan = DrainPlan<Int>()
        let clients = [
            self.entry(1, at: .milliseconds(900)),
            self.entry(2, at: .milliseconds(100)),
            self.entry(3, at: .milliseconds(500)),
            self.entry(4, at: .milliseconds(100)),
        ]
        XCTAssertEqual(plan.begin(clients, window: .seconds(1)), .startTimer(step: .milliseconds(20)))
        XCTAssertEqual(plan.remaining, 4)
        XCTAssertEqual(plan.timerFired(now: self.t0), .close([]), "none due yet")
        XCTAssertEqual(
            plan.timerFired(now: self.t0 + .milliseconds(100)),
            .close([2, 4]),
            "due at the same time: both"
        )
        XCTAssertEqual(plan.timerFired(now: self.t0 + .milliseconds(499)), .close([]))
        XCTAssertEqual(plan.timerFired(now: self.t0 + .milliseconds(600)), .close([3]))
        XCTAssertEqual(plan.remaining, 1)
        XCTAssertEqual(plan.timerFired(now: self.t0 + .seconds(2)), .closeAndFinish([1]))
        XCTAssertEqual(plan.state, .finished)
    }

    func testALateTimerClosesEveryoneDueAtOnce() {
        var plan = DrainPlan<Int>()
        _ = plan.begin((1...5).map { self.entry($0, at: .milliseconds(Int64($0) * 10)) }, window: .milliseconds(60))
        XCTAssertEqual(plan.timerFired(now: self.t0 + .seconds(1)), .closeAndFinish([1, 2, 3, 4, 5]))
    }

    func testTheTimerPaceIsAFiftiethOfTheWindowBetween10And200Milliseconds() {
        XCTAssertEqual(DrainPlan<Int>.step(for: .zero), .milliseconds(10))
        XCTAssertEqual(DrainPlan<Int>.step(for: .seconds(1)), .milliseconds(20))
        XCTAssertEqual(DrainPlan<Int>.step(for: .seconds(5)), .milliseconds(100))
        XCTAssertEqual(DrainPlan<Int>.step(for: .minutes(1)), .milliseconds(200))
    }

    func testOffsetsFallInTheWindowAndRetriesAreJittered() {
        for _ in 0..<200 {
            let offset = DrainPlan<Int>.randomOffset(in: .seconds(2))
            XCTAssertTrue(offset >= .zero && offset < .seconds(2), "\(offset)")
            let retry = DrainPlan<Int>.jitteredRetry(.milliseconds(500))
            XCTAssertTrue(retry >= .milliseconds(500) && retry <= .milliseconds(1500), "\(retry)")
        }
        XCTAssertEqual(DrainPlan<Int>.randomOffset(in: .zero), .zero)
    }
}
