import NIOCore
import XCTest

@testable import SSEGateway

final class SubscriberQueueTests: XCTestCase {
    private let t0 = NIODeadline.uptimeNanoseconds(5_000_000_000)
    private func bytes(_ count: Int) -> ByteBuffer { ByteBuffer(repeating: UInt8(ascii: "x"), count: count) }

    func testWritableClientWritesStraightThrough() {
        var queue = SubscriberQueue(maxQueue: 100, maxLag: .seconds(1))
        XCTAssertEqual(
            queue.offer(self.bytes(1000), producedAt: self.t0, now: self.t0),
            .write,
            "the channel's own watermark bounds this"
        )
        XCTAssertEqual(queue.pendingBytes, 0)
    }

    /// An HTTP/2 stream with a shut window stays writable below its watermark; the transport's held bytes
    /// count for `max_lag` all the same (writable or blocked), and a short hold does not.
    func testBytesHeldByTheTransportLongerThanMaxLagEvictAWritableClient() {
        var queue = SubscriberQueue(maxQueue: 100, maxLag: .seconds(1))
        XCTAssertNil(queue.checkLag(now: self.t0 + .seconds(5), heldSince: nil), "nothing held")
        XCTAssertNil(
            queue.checkLag(now: self.t0 + .milliseconds(900), heldSince: self.t0),
            "held for less than max_lag"
        )
        XCTAssertEqual(queue.state, .writable)
        XCTAssertEqual(queue.checkLag(now: self.t0 + .milliseconds(1100), heldSince: self.t0), .maxLag)
        XCTAssertEqual(queue.state, .evicted(.maxLag))
        XCTAssertNil(queue.checkLag(now: self.t0 + .seconds(9), heldSince: self.t0), "evicted once")

        var blocked = SubscriberQueue(maxQueue: 100, maxLag: .seconds(1))
        blocked.writabilityChanged(isWritable: false, now: self.t0 + .milliseconds(800))
        XCTAssertEqual(
            blocked.checkLag(now: self.t0 + .milliseconds(1100), heldSince: self.t0),
            .maxLag,
            "held since before it blocked"
        )
    }

    func testBlockedClientQueuesInOrderAndDrains() {
        var queue = SubscriberQueue(maxQueue: 100, maxLag: .seconds(1))
        queue.writabilityChanged(isWritable: false, now: self.t0)
        XCTAssertEqual(queue.offer(ByteBuffer(string: "a"), producedAt: self.t0, now: self.t0), .queued)
        XCTAssertEqual(queue.offer(ByteBuffer(string: "b"), producedAt: self.t0, now: self.t0), .queued)
        XCTAssertEqual(queue.pendingBytes, 2)
        // Still blocked while draining: a new event must queue behind the old ones, not overtake them.
        queue.writabilityChanged(isWritable: true, now: self.t0)
        XCTAssertEqual(queue.state, .blocked)
        XCTAssertEqual(queue.offer(ByteBuffer(string: "c"), producedAt: self.t0, now: self.t0), .queued)
        XCTAssertEqual(queue.nextToDrain().map { String(buffer: $0) }, "a")
        XCTAssertEqual(queue.nextToDrain().map { String(buffer: $0) }, "b")
        XCTAssertEqual(queue.nextToDrain().map { String(buffer: $0) }, "c")
        XCTAssertEqual(queue.state, .writable)
        XCTAssertNil(queue.nextToDrain())
        XCTAssertEqual(queue.pendingBytes, 0)
    }

    func testOverMaxQueueEvictsOnceAndFreesTheQueue() {
        var queue = SubscriberQueue(maxQueue: 100, maxLag: .seconds(10))
        queue.writabilityChanged(isWritable: false, now: self.t0)
        XCTAssertEqual(queue.offer(self.bytes(60), producedAt: self.t0, now: self.t0), .queued)
        XCTAssertEqual(queue.offer(self.bytes(40), producedAt: self.t0, now: self.t0), .queued)
        XCTAssertEqual(queue.offer(self.bytes(1), producedAt: self.t0, now: self.t0), .evict(.maxQueue))
        XCTAssertEqual(queue.state, .evicted(.maxQueue))
        XCTAssertEqual(queue.pendingBytes, 0)
        XCTAssertEqual(queue.pendingCount, 0)
        XCTAssertEqual(queue.offer(self.bytes(1), producedAt: self.t0, now: self.t0), .drop)
        queue.writabilityChanged(isWritable: true, now: self.t0)
        XCTAssertEqual(queue.state, .evicted(.maxQueue))
    }

    func testLagEvictsOnOfferAndOnTheTimer() {
        var queue = SubscriberQueue(maxQueue: 1 << 20, maxLag: .milliseconds(500))
        queue.writabilityChanged(isWritable: false, now: self.t0)
        XCTAssertEqual(queue.offer(self.bytes(10), producedAt: self.t0, now: self.t0), .queued)
        XCTAssertNil(queue.checkLag(now: self.t0 + .milliseconds(400)))
        XCTAssertEqual(
            queue.offer(self.bytes(10), producedAt: self.t0 + .milliseconds(600), now: self.t0 + .milliseconds(600)),
            .evict(.maxLag)
        )

        var timed = SubscriberQueue(maxQueue: 1 << 20, maxLag: .milliseconds(500))
        timed.writabilityChanged(isWritable: false, now: self.t0)
        XCTAssertNil(timed.checkLag(now: self.t0 + .milliseconds(499)))
        // Nothing queued here, but the channel has held unsent bytes since it blocked.
        XCTAssertEqual(timed.checkLag(now: self.t0 + .milliseconds(501)), .maxLag)
        XCTAssertEqual(timed.state, .evicted(.maxLag))
    }

    func testWritableAgainResetsTheLagClock() {
        var queue = SubscriberQueue(maxQueue: 1 << 20, maxLag: .milliseconds(500))
        queue.writabilityChanged(isWritable: false, now: self.t0)
        queue.writabilityChanged(isWritable: true, now: self.t0 + .milliseconds(400))
        XCTAssertEqual(queue.state, .writable)
        queue.writabilityChanged(isWritable: false, now: self.t0 + .milliseconds(450))
        XCTAssertNil(queue.checkLag(now: self.t0 + .milliseconds(900)))
        XCTAssertEqual(queue.checkLag(now: self.t0 + .milliseconds(951)), .maxLag)
    }

    func testReplayBytesArePacedButExempt() {
        var queue = SubscriberQueue(maxQueue: 100, maxLag: .milliseconds(500))
        queue.writabilityChanged(isWritable: false, now: self.t0)
        for _ in 0..<50 {
            XCTAssertEqual(queue.offer(self.bytes(100), producedAt: self.t0, now: self.t0, replay: true), .queued)
        }
        XCTAssertEqual(queue.pendingBytes, 0, "replay does not count against max_queue")
        XCTAssertEqual(queue.pendingCount, 50)
        XCTAssertEqual(queue.offer(self.bytes(100), producedAt: self.t0, now: self.t0), .queued)
        XCTAssertEqual(
            queue.offer(self.bytes(1), producedAt: self.t0, now: self.t0),
            .evict(.maxQueue),
            "live bytes still count"
        )
    }

    func testLagCountsFromTheEventsArrivalNotFromTheOffer() {
        var queue = SubscriberQueue(maxQueue: 1 << 20, maxLag: .milliseconds(500))
        queue.writabilityChanged(isWritable: false, now: self.t0 + .milliseconds(550))
        // The event reached the gateway 600 ms before it could be queued for this client.
        XCTAssertEqual(queue.offer(self.bytes(10), producedAt: self.t0, now: self.t0 + .milliseconds(600)), .queued)
        XCTAssertEqual(queue.checkLag(now: self.t0 + .milliseconds(601)), .maxLag)
    }
}
