import NIOCore
import SSE
import XCTest

@testable import SSEGateway

/// Moving a replay ring's start back to an older id: the state machine as a plain value, and the
/// ring's side (`start(after:)`, `prepend`).
final class ReplayRebaseTests: XCTestCase {
    private let now = NIODeadline.uptimeNanoseconds(1_000_000_000)
    private let allocator = ByteBufferAllocator()

    private func events(_ range: ClosedRange<Int>) -> [ServerSentEvent] {
        range.map { ServerSentEvent(id: String($0), data: "d\($0)") }
    }

    private func ids(_ events: [ServerSentEvent]) -> [String?] { events.map(\.id) }

    func testCollectsUpToTheRingStartThenDropsWhatTheRingHoldsThenPassesNewEvents() {
        var rebase = ReplayRebase(limit: 100)
        let held: Set<String> = ["26", "27", "28"]
        rebase.begin(from: "12", ringStart: "25")
        // A burst split anywhere: the replay from 13, the ring's start 25, what the ring holds, new events.
        var first = rebase.received(self.events(13...20), holds: held.contains, newestHeld: "28")
        XCTAssertNil(first.prepend)
        XCTAssertEqual(first.append, [])
        XCTAssertTrue(rebase.isCollecting)
        first = rebase.received(self.events(21...27), holds: held.contains, newestHeld: "28")
        XCTAssertEqual(first.prepend.map { self.ids($0.events) }, self.ids(self.events(13...25)))
        XCTAssertEqual(first.prepend?.after, "12")
        XCTAssertEqual(first.append, [])
        XCTAssertEqual(rebase.state, .skipping(lastHeld: "28"))
        let rest = rebase.received(self.events(28...30), holds: held.contains, newestHeld: "28")
        XCTAssertNil(rest.prepend)
        XCTAssertEqual(self.ids(rest.append), ["29", "30"])
        XCTAssertEqual(rebase.state, .idle)
        XCTAssertEqual(
            self.ids(rebase.received(self.events(31...31), holds: held.contains, newestHeld: "30").append),
            ["31"]
        )
    }

    func testAnEmptyRingNeedsNoSkipping() {
        var rebase = ReplayRebase(limit: 100)
        rebase.begin(from: "3", ringStart: "6")
        let output = rebase.received(self.events(4...8), holds: { _ in false }, newestHeld: nil)
        XCTAssertEqual(output.prepend.map { self.ids($0.events) }, ["4", "5", "6"])
        XCTAssertEqual(self.ids(output.append), ["7", "8"])
        XCTAssertEqual(rebase.state, .idle)
    }

    func testWithoutAKnownStartTheFirstHeldIDEndsTheCollection() {
        var rebase = ReplayRebase(limit: 100)
        rebase.begin(from: "3", ringStart: nil)
        let held: Set<String> = ["6", "7"]
        let output = rebase.received(self.events(4...9), holds: held.contains, newestHeld: "7")
        XCTAssertEqual(output.prepend.map { self.ids($0.events) }, ["4", "5"])
        XCTAssertEqual(self.ids(output.append), ["8", "9"])
    }

    func testAReplayThatDivergesFromTheRingPassesEverythingOn() {
        var rebase = ReplayRebase(limit: 100)
        rebase.begin(from: "a", ringStart: "c")
        let held: Set<String> = ["d", "e", "f"]
        let events = ["b", "c", "d", "x", "e"].map { ServerSentEvent(id: $0, data: $0) }
        let output = rebase.received(events, holds: held.contains, newestHeld: "f")
        XCTAssertEqual(output.prepend.map { self.ids($0.events) }, ["b", "c"])
        XCTAssertEqual(
            self.ids(output.append),
            ["x", "e"],
            "an id the ring lacks ends the skipping: nothing new is dropped"
        )
    }

    func testTheCollectionIsBoundedAndGivingUpForgetsIt() {
        var rebase = ReplayRebase(limit: 3)
        rebase.begin(from: "1", ringStart: "9")
        let output = rebase.received(self.events(2...9), holds: { _ in false }, newestHeld: nil)
        XCTAssertEqual(output.prepend.map { self.ids($0.events) }, ["7", "8", "9"])
        XCTAssertEqual(output.prepend?.after, "6", "the kept events follow the newest one dropped")
        rebase.begin(from: "1", ringStart: "20")
        _ = rebase.received(self.events(2...5), holds: { _ in false }, newestHeld: nil)
        XCTAssertEqual(
            self.ids(rebase.giveUp()),
            ["3", "4", "5"],
            "what was collected (up to the limit) is handed back, never dropped"
        )
        XCTAssertEqual(rebase.state, .idle)
    }

    /// A backend that ignores Last-Event-ID answers the rebase with live events: with integer ids the
    /// first one newer than the ring's newest ends the collection at once and is delivered, so live
    /// delivery to the feed's other clients neither stops nor loses anything.
    func testAnEventNewerThanTheRingEndsTheCollectionAndIsDeliveredAtOnce() {
        var rebase = ReplayRebase(limit: 100)
        let held: Set<String> = ["26", "27", "28"]
        rebase.begin(from: "3", ringStart: "25")
        let output = rebase.received(self.events(29...31), holds: held.contains, newestHeld: "28")
        XCTAssertNil(
            output.prepend,
            "nothing to put in front: the ring's start stays where it was (a gap for the older client)"
        )
        XCTAssertTrue(output.ended)
        XCTAssertEqual(self.ids(output.append), ["29", "30", "31"])
        XCTAssertEqual(rebase.state, .idle)

        rebase.begin(from: "3", ringStart: "25")
        let partial = rebase.received(self.events(4...6) + self.events(40...41), holds: held.contains, newestHeld: "28")
        XCTAssertEqual(partial.prepend.map { self.ids($0.events) }, ["4", "5", "6"], "the older ones go in front")
        XCTAssertEqual(self.ids(partial.append), ["40", "41"])
    }

    /// A backend that went down in the middle of its replay: with integer ids what was collected is
    /// history (older than the ring's newest), never handed back to be delivered again as new events;
    /// opaque ids cannot be judged and are handed back as before.
    func testAGivenUpCollectionOfOlderIntegerIDsIsNotHandedBack() {
        var rebase = ReplayRebase(limit: 100)
        rebase.begin(from: "12", ringStart: nil)
        let output = rebase.received(self.events(13...14), holds: { _ in false }, newestHeld: "25")
        XCTAssertNil(output.prepend)
        XCTAssertTrue(output.append.isEmpty)
        XCTAssertEqual(rebase.giveUp(newestHeld: "25"), [], "13 and 14 are older than 25: every client had them")
        XCTAssertEqual(rebase.state, .idle)
        rebase.begin(from: "a", ringStart: "b")
        _ = rebase.received([ServerSentEvent(id: "c", data: "x")], holds: { _ in false }, newestHeld: "d")
        XCTAssertEqual(rebase.giveUp(newestHeld: "d").map(\.id), ["c"], "opaque: handed back")
    }

    /// Collecting a long history is linear (each event was once a copy of the whole prefix).
    func testCollectingALongHistoryIsLinear() {
        var rebase = ReplayRebase(limit: 40_000)
        rebase.begin(from: "a", ringStart: "b")
        let history = (0..<40_000).map { ServerSentEvent(id: "h\($0)", data: "x") }
        let started = NIODeadline.now()
        for event in history {
            _ = rebase.received([event], holds: { _ in false }, newestHeld: nil)
        }
        let took = NIODeadline.now() - started
        XCTAssertEqual(rebase.giveUp().count, 40_000)
        XCTAssertLessThan(
            took,
            .seconds(5),
            "40,000 events collected in \(took.nanoseconds / 1_000_000) ms (quadratic: ~27 s in a debug build)"
        )
    }

    func testTheRingResumesFromItsStartAndTakesOlderEventsInFront() {
        var ring = ReplayBuffer(maxEvents: 100, maxBytes: 1 << 20, maxAge: .hours(1))
        ring.start(after: "25")
        XCTAssertEqual(ring.startID, "25")
        XCTAssertEqual(ring.lookup(after: "25", now: self.now).resume, .resumed)
        for (offset, event) in self.events(26...28).enumerated() {
            ring.append(
                EncodedEvent(
                    sequence: Int64(offset + 1),
                    event: event,
                    receivedAt: self.now,
                    allocator: self.allocator
                ),
                now: self.now
            )
        }
        let older = self.events(13...25).enumerated().map { offset, event in
            EncodedEvent(
                sequence: ring.firstSequence - 13 + Int64(offset),
                event: event,
                receivedAt: self.now,
                allocator: self.allocator
            )
        }
        XCTAssertTrue(ring.prepend(older, after: "12", now: self.now))
        XCTAssertEqual(ring.startID, "12")
        XCTAssertEqual(ring.count, 16)
        let fromOldest = ring.lookup(after: "12", now: self.now)
        XCTAssertEqual(fromOldest.resume, .resumed)
        XCTAssertEqual(fromOldest.events.map(\.id), (13...28).map { String($0) })
        let fromMiddle = ring.lookup(after: "20", now: self.now)
        XCTAssertEqual(fromMiddle.events.map(\.id), (21...28).map { String($0) })
        XCTAssertEqual(
            fromMiddle.lastSequence,
            3,
            "joined clients keep their sequences: prepended events are below them"
        )
        XCTAssertEqual(ring.lookup(after: "25", now: self.now).events.map(\.id), ["26", "27", "28"])
    }

    func testATrimmedRingTakesNoOlderEvents() {
        var ring = ReplayBuffer(maxEvents: 2, maxBytes: 1 << 20, maxAge: .hours(1))
        ring.start(after: "0")
        for index in 1...3 {
            ring.append(
                EncodedEvent(
                    sequence: Int64(index),
                    event: ServerSentEvent(id: String(index), data: "x"),
                    receivedAt: self.now,
                    allocator: self.allocator
                ),
                now: self.now
            )
        }
        XCTAssertTrue(ring.hasTrimmed)
        XCTAssertNil(ring.startID)
        let older = [
            EncodedEvent(
                sequence: ring.firstSequence - 1,
                event: ServerSentEvent(id: "x", data: "x"),
                receivedAt: self.now,
                allocator: self.allocator
            )
        ]
        XCTAssertFalse(ring.prepend(older, after: nil, now: self.now))
        XCTAssertEqual(ring.count, 2)
    }
}
