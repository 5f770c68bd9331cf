import XCTest

@testable import SSEGateway

/// ``CallAdmission`` as a plain value: the slot bound, FIFO hand-over of freed slots, and timeouts that race
/// with hand-overs.
final class CallAdmissionTests: XCTestCase {
    func testRunsUpToTheBoundThenQueues() {
        var admission = CallAdmission<String>(maxConcurrent: 2)
        XCTAssertEqual(admission.acquire("a"), .run)
        XCTAssertEqual(admission.acquire("b"), .run)
        XCTAssertEqual(admission.acquire("c"), .wait(id: 1))
        XCTAssertEqual(admission.acquire("d"), .wait(id: 2))
        XCTAssertEqual(admission.inFlight, 2)
        XCTAssertEqual(admission.waitingCount, 2)
    }

    func testFreedSlotGoesToTheOldestWaiter() {
        var admission = CallAdmission<String>(maxConcurrent: 1)
        XCTAssertEqual(admission.acquire("a"), .run)
        _ = admission.acquire("b")
        _ = admission.acquire("c")
        XCTAssertEqual(admission.release(), "b", "FIFO")
        XCTAssertEqual(admission.inFlight, 1, "the slot passed on, not freed")
        XCTAssertEqual(admission.release(), "c")
        XCTAssertNil(admission.release())
        XCTAssertEqual(admission.inFlight, 0)
        XCTAssertEqual(admission.acquire("d"), .run)
    }

    func testExpiredWaiterIsSkippedAndItsTimerAfterAHandOverIsANoOp() {
        var admission = CallAdmission<String>(maxConcurrent: 1)
        _ = admission.acquire("a")
        guard case .wait(let b) = admission.acquire("b"), case .wait(let c) = admission.acquire("c") else {
            return XCTFail("expected waits")
        }
        XCTAssertEqual(admission.expire(b), "b")
        XCTAssertEqual(admission.release(), "c", "b timed out; c is next")
        XCTAssertNil(admission.expire(c), "c already holds a slot: its late timer changes nothing")
        XCTAssertEqual(admission.inFlight, 1)
        XCTAssertNil(admission.release())
        XCTAssertEqual(admission.inFlight, 0)
        XCTAssertNil(admission.expire(b), "expiring twice is a no-op")
    }

    /// A stalled backend: thousands arrive and time out while no call ends. The queue of ids does not keep one
    /// element per expired waiter, and the next release still finds the oldest live one.
    func testQueueStaysBoundedWhileWaitersExpire() {
        var admission = CallAdmission<Int>(maxConcurrent: 1)
        _ = admission.acquire(-1)
        var ids: [UInt64] = []
        for waiter in 0..<10_000 {
            guard case .wait(let id) = admission.acquire(waiter) else { return XCTFail("expected a wait") }
            ids.append(id)
            if waiter >= 10 { XCTAssertEqual(admission.expire(ids[waiter - 10]), waiter - 10) }
        }
        XCTAssertEqual(admission.waitingCount, 10)
        XCTAssertLessThanOrEqual(admission.queueCountForTesting, 2 * 10 + 64 + 1)
        XCTAssertEqual(admission.release(), 9_990)
    }
}
