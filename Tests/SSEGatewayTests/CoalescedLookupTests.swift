import NIOCore
import XCTest

@testable import SSEGateway

/// ``CoalescedLookup`` as a plain value: one leader per key, followers woken with it, what is cached.
final class CoalescedLookupTests: XCTestCase {
    private let now = NIODeadline.uptimeNanoseconds(1_000_000_000)

    func testConcurrentMissesShareOneFlight() {
        var lookup = CoalescedLookup<String, Int, Int>(ttl: .seconds(30), maxEntries: 100)
        XCTAssertNil(lookup.cached("k", now: self.now))
        XCTAssertTrue(Self.isLead(lookup.join("k", waiter: 1, now: self.now)))
        for waiter in 2...100 { XCTAssertTrue(Self.isFollow(lookup.join("k", waiter: waiter, now: self.now))) }
        XCTAssertTrue(Self.isLead(lookup.join("other", waiter: 0, now: self.now)), "another key flies alone")
        XCTAssertEqual(lookup.flightCount, 2)
        XCTAssertEqual(lookup.land("k", answer: 7, now: self.now), Array(1...100), "everyone, in join order")
        XCTAssertEqual(lookup.cached("k", now: self.now), 7)
        guard case .cached(7) = lookup.join("k", waiter: 101, now: self.now) else {
            return XCTFail("a join after the landing reads the cache")
        }
        XCTAssertEqual(lookup.flightCount, 1)
    }

    func testNoAnswerIsNotCachedAndTheNextMissFliesAgain() {
        var lookup = CoalescedLookup<String, Int, Int>(ttl: .seconds(30), maxEntries: 100)
        _ = lookup.join("k", waiter: 1, now: self.now)
        _ = lookup.join("k", waiter: 2, now: self.now)
        XCTAssertEqual(lookup.land("k", answer: nil, now: self.now), [1, 2])
        XCTAssertNil(lookup.cached("k", now: self.now))
        XCTAssertTrue(Self.isLead(lookup.join("k", waiter: 3, now: self.now)))
    }

    private static func isLead<A>(_ action: CoalescedLookup<String, A, Int>.JoinAction) -> Bool {
        if case .lead = action { return true }
        return false
    }

    private static func isFollow<A>(_ action: CoalescedLookup<String, A, Int>.JoinAction) -> Bool {
        if case .follow = action { return true }
        return false
    }
}
