import NIOCore
import XCTest

@testable import SSEGateway

/// ``AnswerCache`` as a plain value: expiry at `ttl`, the `maxEntries` bound (oldest first), and `order` kept
/// from growing with stale elements.
final class AnswerCacheTests: XCTestCase {
    private let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)

    private func at(_ milliseconds: Int64) -> NIODeadline { self.t0 + .milliseconds(milliseconds) }

    func testAnswerLivesExactlyTTL() {
        var cache = AnswerCache<String, Int>(ttl: .seconds(30), maxEntries: 10)
        XCTAssertNil(cache.answer(for: "a", now: self.at(0)))
        cache.insert(1, for: "a", now: self.at(0))
        XCTAssertEqual(cache.answer(for: "a", now: self.at(0)), 1)
        XCTAssertEqual(cache.answer(for: "a", now: self.at(29_999)), 1)
        XCTAssertNil(cache.answer(for: "a", now: self.at(30_000)), "expired at now + ttl")
        XCTAssertEqual(cache.count, 0, "an expired entry found by a lookup is dropped at once")
    }

    func testReinsertReplacesAndRestartsTheClock() {
        var cache = AnswerCache<String, Int>(ttl: .seconds(10), maxEntries: 10)
        cache.insert(1, for: "a", now: self.at(0))
        XCTAssertNil(cache.answer(for: "a", now: self.at(10_000)))
        cache.insert(2, for: "a", now: self.at(10_000))
        XCTAssertEqual(cache.answer(for: "a", now: self.at(19_999)), 2)
        XCTAssertEqual(cache.count, 1)
    }

    func testBoundEvictsOldestFirst() {
        var cache = AnswerCache<Int, Int>(ttl: .seconds(60), maxEntries: 3)
        for key in 0..<5 { cache.insert(key, for: key, now: self.at(Int64(key))) }
        XCTAssertEqual(cache.count, 3)
        XCTAssertNil(cache.answer(for: 0, now: self.at(10)))
        XCTAssertNil(cache.answer(for: 1, now: self.at(10)))
        for key in 2..<5 { XCTAssertEqual(cache.answer(for: key, now: self.at(10)), key) }
    }

    func testExpiredEntriesGoBeforeLiveOnes() {
        var cache = AnswerCache<Int, Int>(ttl: .seconds(1), maxEntries: 3)
        cache.insert(0, for: 0, now: self.at(0))
        cache.insert(1, for: 1, now: self.at(0))
        cache.insert(2, for: 2, now: self.at(900))
        // At 1 s keys 0 and 1 are expired: inserting two more drops them, not the live key 2.
        cache.insert(3, for: 3, now: self.at(1_000))
        cache.insert(4, for: 4, now: self.at(1_000))
        XCTAssertEqual(cache.count, 3)
        XCTAssertEqual(cache.answer(for: 2, now: self.at(1_000)), 2)
        XCTAssertEqual(cache.answer(for: 3, now: self.at(1_000)), 3)
        XCTAssertEqual(cache.answer(for: 4, now: self.at(1_000)), 4)
    }

    func testZeroBoundOrZeroTTLCachesNothing() {
        var none = AnswerCache<Int, Int>(ttl: .seconds(1), maxEntries: 0)
        none.insert(1, for: 1, now: self.at(0))
        XCTAssertNil(none.answer(for: 1, now: self.at(0)))
        var instant = AnswerCache<Int, Int>(ttl: .zero, maxEntries: 10)
        instant.insert(1, for: 1, now: self.at(0))
        XCTAssertNil(instant.answer(for: 1, now: self.at(0)))
    }

    /// A storm of distinct keys against a small bound, with expiry and re-inserts mixed in: the bound always
    /// holds, every answer read back is the last one written, and the bookkeeping stays proportional to it.
    func testStormKeepsBoundAndAnswers() {
        var cache = AnswerCache<Int, Int>(ttl: .milliseconds(50), maxEntries: 100)
        var written: [Int: (value: Int, at: Int64)] = [:]
        var generator = SystemRandomNumberGenerator()
        for step in 0..<50_000 {
            let now = Int64(step / 10)  // 10 operations per millisecond
            let key = Int.random(in: 0..<500, using: &generator)
            if let answer = cache.answer(for: key, now: self.at(now)) {
                let last = written[key]!
                XCTAssertEqual(answer, last.value)
                XCTAssertLessThan(now - last.at, 50, "an answer outlived its ttl")
            } else {
                cache.insert(step, for: key, now: self.at(now))
                written[key] = (step, now)
            }
            XCTAssertLessThanOrEqual(cache.count, 100)
        }
        XCTAssertLessThanOrEqual(cache.orderCountForTesting, 2 * 100 + 64 + 1)
    }
}
