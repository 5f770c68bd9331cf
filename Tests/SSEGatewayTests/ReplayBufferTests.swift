import NIOCore
import SSE
import XCTest

@testable import SSEGateway

final class ReplayBufferTests: XCTestCase {
    private let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    private let allocator = ByteBufferAllocator()

    private func event(_ sequence: Int64, id: String?, data: String? = "x", at time: NIODeadline? = nil) -> EncodedEvent
    {
        EncodedEvent(
            sequence: sequence,
            event: ServerSentEvent(id: id, data: data),
            receivedAt: time ?? self.start,
            allocator: self.allocator
        )
    }

    private func filled(
        _ count: Int,
        maxEvents: Int = 100,
        maxBytes: Int = 1 << 20,
        maxAge: TimeAmount = .hours(1)
    ) -> ReplayBuffer {
        var buffer = ReplayBuffer(maxEvents: maxEvents, maxBytes: maxBytes, maxAge: maxAge)
        for index in 1...count {
            buffer.append(self.event(Int64(index), id: "e\(index)"), now: self.start)
        }
        return buffer
    }

    /// A ring started after a seed id resumes a client holding it; once the upstream proved it did not
    /// resume there (`forgetStart`), that client gets a gap and the whole ring.
    func testAForgottenStartNoLongerResumesTheSeed() {
        var buffer = ReplayBuffer(maxEvents: 10, maxBytes: 1 << 20, maxAge: .hours(1))
        buffer.start(after: "3")
        XCTAssertEqual(buffer.lookup(after: "3", now: self.start).resume, .resumed)
        XCTAssertEqual(buffer.startID, "3")
        buffer.forgetStart()
        buffer.append(self.event(1, id: "6"), now: self.start)
        let lookup = buffer.lookup(after: "3", now: self.start)
        XCTAssertEqual(lookup.resume, .gap)
        XCTAssertEqual(lookup.events.map(\.id), ["6"])
        XCTAssertNil(buffer.startID, "no rebase can join older events up to an unknown start")
    }

    func testEncodedEventFramesOneChunkAndSharesThePayload() {
        let encoded = self.event(1, id: "7", data: "a\nb")
        XCTAssertEqual(String(buffer: encoded.payload), "id: 7\ndata: a\ndata: b\n\n")
        XCTAssertEqual(String(buffer: encoded.chunk), "17\r\nid: 7\ndata: a\ndata: b\n\n\r\n")
        XCTAssertEqual(encoded.size, 0x17)
    }

    func testACopyForAnotherLoopHasTheSameBytesInItsOwnStorage() {
        let original = self.event(3, id: "9", data: String(repeating: "x", count: 300))
        let copy = original.copy(allocator: self.allocator)
        XCTAssertEqual(copy.sequence, 3)
        XCTAssertEqual(copy.id, "9")
        XCTAssertEqual(copy.receivedAt, original.receivedAt)
        XCTAssertEqual(copy.chunk, original.chunk)
        XCTAssertEqual(copy.payload, original.payload)
        let originalBase = original.chunk.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        let copyBase = copy.chunk.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        XCTAssertNotEqual(originalBase, copyBase)
        // The copy's payload is a slice of the copy's own chunk, not of the original.
        let copyPayloadBase = copy.payload.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        XCTAssertEqual(copyPayloadBase, copyBase + UInt(copy.chunk.readableBytes - copy.payload.readableBytes - 2))
    }

    func testNoResumeIDIsLive() {
        var buffer = self.filled(5)
        let lookup = buffer.lookup(after: nil, now: self.start)
        XCTAssertEqual(lookup.resume, .live)
        XCTAssertTrue(lookup.events.isEmpty)
        XCTAssertEqual(lookup.lastSequence, 5)
        XCTAssertEqual(buffer.lookup(after: "", now: self.start).resume, .live)
    }

    func testResumeReturnsExactlyTheEventsAfterTheID() {
        var buffer = self.filled(10)
        let lookup = buffer.lookup(after: "e7", now: self.start)
        XCTAssertEqual(lookup.resume, .resumed)
        XCTAssertEqual(lookup.events.map(\.sequence), [8, 9, 10])
        XCTAssertEqual(lookup.lastSequence, 10)
        XCTAssertTrue(buffer.lookup(after: "e10", now: self.start).events.isEmpty)
        XCTAssertEqual(buffer.lookup(after: "e10", now: self.start).resume, .resumed)
    }

    func testUnknownIDIsAGapWithTheWholeBuffer() {
        var buffer = self.filled(10, maxEvents: 4)
        XCTAssertEqual(buffer.count, 4)
        let lookup = buffer.lookup(after: "e2", now: self.start)
        XCTAssertEqual(lookup.resume, .gap)
        XCTAssertEqual(lookup.events.map(\.sequence), [7, 8, 9, 10])
        XCTAssertEqual(buffer.oldestID, "e7")
    }

    func testByteBoundCountsTheMemoryHeldAndKeepsTheNewestEvent() {
        let sizes = (8...10).map { self.event(Int64($0), id: "e\($0)").storageSize }
        XCTAssertGreaterThanOrEqual(sizes[0], self.event(8, id: "e8").size + 4, "framing counts too")
        var buffer = self.filled(10, maxBytes: sizes.reduce(0, +))
        XCTAssertEqual(buffer.count, 3)
        XCTAssertEqual(buffer.totalBytes, sizes.reduce(0, +))
        var tiny = ReplayBuffer(maxEvents: 10, maxBytes: 1, maxAge: .hours(1))
        tiny.append(self.event(1, id: "a"), now: self.start)
        tiny.append(self.event(2, id: "b"), now: self.start)
        XCTAssertEqual(tiny.count, 1, "the newest event stays even over max_bytes")
        XCTAssertEqual(tiny.lookup(after: "b", now: self.start).resume, .resumed)
        XCTAssertEqual(buffer.lookup(after: "e8", now: self.start).events.map(\.sequence), [9, 10])
    }

    func testNoFalseGapRightBehindTheOldestEventOrAfterEverythingAgedOut() {
        var buffer = self.filled(10, maxEvents: 4)  // holds e7...e10; e6 was trimmed last
        let behind = buffer.lookup(after: "e6", now: self.start)
        XCTAssertEqual(behind.resume, .resumed, "the client has everything before e7")
        XCTAssertEqual(behind.events.map(\.sequence), [7, 8, 9, 10])
        XCTAssertEqual(buffer.lookup(after: "e5", now: self.start).resume, .gap, "e6 is lost for it")

        var quiet = ReplayBuffer(maxEvents: 100, maxBytes: 1 << 20, maxAge: .seconds(10))
        quiet.append(self.event(1, id: "41", at: self.start), now: self.start)
        quiet.append(self.event(2, id: "42", at: self.start), now: self.start)
        let later = quiet.lookup(after: "42", now: self.start + .seconds(11))
        XCTAssertEqual(quiet.count, 0)
        XCTAssertEqual(later.resume, .resumed, "nothing happened since 42: no gap")
        XCTAssertTrue(later.events.isEmpty)
        XCTAssertEqual(quiet.lookup(after: "41", now: self.start + .seconds(11)).resume, .gap)
    }

    func testAgeBound() {
        var buffer = ReplayBuffer(maxEvents: 100, maxBytes: 1 << 20, maxAge: .seconds(10))
        buffer.append(self.event(1, id: "older", at: self.start), now: self.start)
        buffer.append(self.event(2, id: "old", at: self.start + .seconds(1)), now: self.start + .seconds(1))
        buffer.append(self.event(3, id: "new", at: self.start + .seconds(8)), now: self.start + .seconds(8))
        XCTAssertEqual(buffer.count, 3)
        let lookup = buffer.lookup(after: "older", now: self.start + .seconds(12))
        XCTAssertEqual(buffer.count, 1, "two events aged out")
        XCTAssertEqual(lookup.resume, .gap, "the client missed 'old'")
        XCTAssertEqual(lookup.events.map(\.sequence), [3])
    }

    func testDuplicateIDsResolveToTheNewestAndEvictionKeepsTheIndexRight() {
        var buffer = ReplayBuffer(maxEvents: 3, maxBytes: 1 << 20, maxAge: .hours(1))
        buffer.append(self.event(1, id: "same"), now: self.start)
        buffer.append(self.event(2, id: "other"), now: self.start)
        buffer.append(self.event(3, id: "same"), now: self.start)
        XCTAssertEqual(buffer.lookup(after: "same", now: self.start).events.map(\.sequence), [])
        buffer.append(self.event(4, id: nil), now: self.start)  // evicts sequence 1, which must not drop "same" → 3
        XCTAssertEqual(buffer.lookup(after: "same", now: self.start).events.map(\.sequence), [4])
    }

    func testIDOnlyAndIDLessEventsAreBuffered() {
        var buffer = ReplayBuffer(maxEvents: 10, maxBytes: 1 << 20, maxAge: .hours(1))
        buffer.append(self.event(1, id: "a"), now: self.start)
        buffer.append(self.event(2, id: nil, data: "no id"), now: self.start)
        buffer.append(self.event(3, id: "b", data: nil), now: self.start)
        let lookup = buffer.lookup(after: "a", now: self.start)
        XCTAssertEqual(lookup.events.map(\.id), [nil, "b"])
        XCTAssertEqual(lookup.events.map { String(buffer: $0.payload) }, ["data: no id\n\n", "id: b\n\n"])
    }

    func testZeroCapacityStillCountsSequences() {
        var buffer = ReplayBuffer(maxEvents: 0, maxBytes: 0, maxAge: .hours(1))
        buffer.append(self.event(1, id: "a"), now: self.start)
        XCTAssertEqual(buffer.count, 0)
        XCTAssertEqual(buffer.lastSequence, 1)
        XCTAssertEqual(buffer.lookup(after: "a", now: self.start).resume, .gap)
    }
}
