import NIOCore
import XCTest

@testable import SSEGateway

/// ``JWKSRefreshSchedule`` as a plain value: one fetch at a time, the unknown-`kid` rate limit, the health
/// streak that decides the log lines, and the final stop.
final class JWKSRefreshScheduleTests: XCTestCase {
    private let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000_000)

    func testAnUnknownKeyIDFetchesAtMostOncePerMinimumInterval() {
        var schedule = JWKSRefreshSchedule(minInterval: .seconds(30))
        XCTAssertEqual(schedule.unknownKeyID(at: self.t0), .start, "no fetch yet: fetch")
        XCTAssertEqual(schedule.unknownKeyID(at: self.t0), .join, "a fetch runs: share it")
        XCTAssertEqual(schedule.fetchEnded(succeeded: true), .unchanged)
        XCTAssertEqual(schedule.unknownKeyID(at: self.t0 + .seconds(29)), .refuse, "too soon")
        XCTAssertEqual(schedule.unknownKeyID(at: self.t0 + .seconds(30)), .start)
    }

    func testARefreshIsNotRateLimitedAndCountsAsTheLastFetch() {
        var schedule = JWKSRefreshSchedule(minInterval: .seconds(30))
        XCTAssertEqual(schedule.refreshDue(at: self.t0), .start)
        XCTAssertEqual(schedule.refreshDue(at: self.t0), .join)
        XCTAssertEqual(schedule.unknownKeyID(at: self.t0), .join)
        _ = schedule.fetchEnded(succeeded: true)
        XCTAssertEqual(schedule.refreshDue(at: self.t0 + .seconds(1)), .start, "the periodic refresh always fetches")
        _ = schedule.fetchEnded(succeeded: true)
        XCTAssertEqual(schedule.unknownKeyID(at: self.t0 + .seconds(20)), .refuse, "the refresh was the last fetch")
        XCTAssertEqual(schedule.unknownKeyID(at: self.t0 + .seconds(31)), .start)
    }

    func testHealthIsReportedOncePerStreak() {
        var schedule = JWKSRefreshSchedule(minInterval: .zero)
        var changes: [JWKSRefreshSchedule.HealthChange] = []
        for succeeded in [false, false, false, true, true, false, true] {
            XCTAssertEqual(schedule.refreshDue(at: self.t0), .start)
            changes.append(schedule.fetchEnded(succeeded: succeeded))
        }
        XCTAssertEqual(
            changes,
            [.startedFailing, .unchanged, .unchanged, .recovered, .unchanged, .startedFailing, .recovered]
        )
    }

    func testStoppedFetchesNothingEvenWhenAFetchStillReports() {
        var schedule = JWKSRefreshSchedule(minInterval: .zero)
        XCTAssertEqual(schedule.refreshDue(at: self.t0), .start)
        schedule.stop()
        XCTAssertEqual(schedule.fetchEnded(succeeded: false), .startedFailing)
        XCTAssertEqual(schedule.state, .stopped)
        XCTAssertEqual(schedule.unknownKeyID(at: self.t0 + .seconds(60)), .refuse)
        XCTAssertEqual(schedule.refreshDue(at: self.t0 + .seconds(60)), .refuse)
    }
}
