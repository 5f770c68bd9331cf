import NIOCore
import XCTest

@testable import SSEGateway

/// `TokenBucket` as a plain value: a second's worth at once, then the rate, exact refills, rate changes.
final class TokenBucketTests: XCTestCase {
    private func at(_ milliseconds: Int64) -> NIODeadline {
        .uptimeNanoseconds(1_000_000_000_000 + UInt64(milliseconds * 1_000_000))
    }

    func testABurstOfOneSecondThenTheRate() {
        var bucket = TokenBucket()
        let taken = (0..<15).filter { _ in bucket.take(rate: 10, now: self.at(0)) }.count
        XCTAssertEqual(taken, 10, "a full bucket holds one second's worth")
        XCTAssertFalse(bucket.take(rate: 10, now: self.at(99)), "a token takes 100 ms to come back")
        XCTAssertTrue(bucket.take(rate: 10, now: self.at(100)))
        XCTAssertFalse(bucket.take(rate: 10, now: self.at(100)))
        // Over 250 ms: two whole tokens and half of the next.
        XCTAssertTrue(bucket.take(rate: 10, now: self.at(350)))
        XCTAssertTrue(bucket.take(rate: 10, now: self.at(350)))
        XCTAssertFalse(bucket.take(rate: 10, now: self.at(350)))
        XCTAssertTrue(bucket.take(rate: 10, now: self.at(400)), "the half token was kept")
    }

    func testAQuietBucketBanksAtMostOneSecond() {
        var bucket = TokenBucket()
        XCTAssertTrue(bucket.take(rate: 5, now: self.at(0)))
        let taken = (0..<20).filter { _ in bucket.take(rate: 5, now: self.at(3_600_000)) }.count
        XCTAssertEqual(taken, 5, "an hour of quiet is still one second's worth")
    }

    func testZeroIsNoLimitAndARateChangeKeepsTheTokens() {
        var bucket = TokenBucket()
        XCTAssertTrue((0..<10_000).allSatisfy { _ in bucket.take(rate: 0, now: self.at(0)) })
        XCTAssertEqual((0..<10).filter { _ in bucket.take(rate: 4, now: self.at(0)) }.count, 4)
        // Raised to 100/s: refills at the new rate, capped at the new burst.
        XCTAssertEqual((0..<200).filter { _ in bucket.take(rate: 100, now: self.at(50)) }.count, 5)
        XCTAssertEqual((0..<200).filter { _ in bucket.take(rate: 100, now: self.at(5_000)) }.count, 100)
        // Lowered to 2/s: what was banked is capped at the new burst.
        XCTAssertEqual((0..<10).filter { _ in bucket.take(rate: 2, now: self.at(10_000)) }.count, 2)
    }

    func testTimeGoingBackwardsAddsNothing() {
        var bucket = TokenBucket()
        XCTAssertTrue(bucket.take(rate: 1, now: self.at(1_000)))
        XCTAssertFalse(bucket.take(rate: 1, now: self.at(500)))
        XCTAssertFalse(bucket.take(rate: 1, now: self.at(1_500)))
        XCTAssertTrue(bucket.take(rate: 1, now: self.at(2_000)))
    }
}
