import NIOCore
import SSE
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

final class ResumeIntegrationTests: XCTestCase {
    private func start(gapEvent: Bool = false, maxEvents: Int = 1000) async throws -> Harness {
        let harness = try await Harness.start { origin in
            [
                try Harness.feed("/prices", upstream: "\(origin)/prices") {
                    $0.settings.replay.gapEvent = gapEvent
                    $0.settings.replay.maxEvents = maxEvents
                }
            ]
        }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        return harness
    }

    /// Publishes and waits until the gateway's replay ring holds the events (upstream hop done).
    private func publish(_ harness: Harness, _ range: ClosedRange<Int>) async throws {
        for index in range { harness.origin.publish(data: "event \(index)") }
        try await eventually("gateway received \(range.upperBound)") {
            try await harness.metrics().feeds.first?.lastEventID == String(range.upperBound)
        }
    }

    func testNoResumeIDStartsWithLiveEventsOnly() async throws {
        let harness = try await self.start()
        self.addTeardownBlock { await harness.stop() }
        try await self.publish(harness, 1...5)
        let client = try await harness.client("/prices")
        _ = try await client.waitForHead()
        try await eventually("joined") { try await harness.metrics().connectedClients == 1 }
        try await self.publish(harness, 6...6)
        let events = try await client.waitForEvents(1)
        XCTAssertEqual(events.map(\.id), ["6"])
        await client.close()
    }

    func testResumeByHeaderAndByEachQueryParameter() async throws {
        let harness = try await self.start()
        self.addTeardownBlock { await harness.stop() }
        try await self.publish(harness, 1...10)
        let header = try await harness.client("/prices", headers: [("Last-Event-ID", "7")])
        let query1 = try await harness.client("/prices?lastEventId=8")
        let query2 = try await harness.client("/prices?foo=1&last_event_id=6")
        let query3 = try await harness.client("/prices?evs_last_event_id=9")
        let got1 = try await header.waitForEvents(3)
        XCTAssertEqual(got1.map(\.id), ["8", "9", "10"])
        let got2 = try await query1.waitForEvents(2)
        XCTAssertEqual(got2.map(\.id), ["9", "10"])
        let got3 = try await query2.waitForEvents(4)
        XCTAssertEqual(got3.map(\.id), ["7", "8", "9", "10"])
        let got4 = try await query3.waitForEvents(1)
        XCTAssertEqual(got4.map(\.id), ["10"])
        // Then live, with no duplicate and no gap.
        try await self.publish(harness, 11...12)
        let got5 = try await header.waitForEvents(5)
        XCTAssertEqual(got5.map(\.id), ["8", "9", "10", "11", "12"])
        let got6 = try await query3.waitForEvents(3)
        XCTAssertEqual(got6.map(\.id), ["10", "11", "12"])
        let head = try await header.waitForHead()
        XCTAssertTrue(head.headers["Last-Event-ID"].isEmpty, "no gap, no header")
        XCTAssertFalse(header.body.contains(": gap"))
        for client in [header, query1, query2, query3] { await client.close() }
    }

    func testClientReconnectingMissesNothing() async throws {
        let harness = try await self.start()
        self.addTeardownBlock { await harness.stop() }
        let first = try await harness.client("/prices")
        _ = try await first.waitForHead()
        try await eventually("joined") { try await harness.metrics().connectedClients == 1 }
        try await self.publish(harness, 1...3)
        let seen = try await first.waitForEvents(3)
        await first.close()
        try await self.publish(harness, 4...6)  // while disconnected
        let second = try await harness.client("/prices", headers: [("Last-Event-ID", seen.last!.id!)])
        _ = try await second.waitForEvents(3)
        try await self.publish(harness, 7...7)
        let got7 = try await second.waitForEvents(4)
        XCTAssertEqual(got7.map(\.id), ["4", "5", "6", "7"])
        await second.close()
    }

    func testGapSignalsThreeWays() async throws {
        let harness = try await self.start(gapEvent: true, maxEvents: 3)
        self.addTeardownBlock { await harness.stop() }
        try await self.publish(harness, 1...10)
        let client = try await harness.client("/prices", headers: [("Last-Event-ID", "2")])
        let head = try await client.waitForHead()
        XCTAssertEqual(head.headers["Last-Event-ID"], ["8"], "names where replay started")
        let events = try await client.waitForEvents(4)
        XCTAssertEqual(events[0].type, "gap")
        XCTAssertEqual(events[0].data, "{\"lastEventId\":\"2\",\"replayFrom\":\"8\"}")
        XCTAssertNil(events[0].id)
        XCTAssertEqual(events.dropFirst().map(\.id), ["8", "9", "10"])
        XCTAssertTrue(client.body.contains(": gap"), "comment for proxies and curl")
        await client.close()

        // Without gap_event: the comment and the header, but no event reaches JavaScript.
        let plain = try await self.start(gapEvent: false, maxEvents: 3)
        self.addTeardownBlock { await plain.stop() }
        try await self.publish(plain, 1...5)
        let other = try await plain.client("/prices", headers: [("Last-Event-ID", "1")])
        let got8 = try await other.waitForEvents(3)
        XCTAssertEqual(got8.map(\.id), ["3", "4", "5"])
        XCTAssertTrue(other.body.contains(": gap"))
        await other.close()
    }

    func testIDOnlyBlocksAreForwardedAndBuffered() async throws {
        let harness = try await self.start()
        self.addTeardownBlock { await harness.stop() }
        let live = try await harness.client("/prices")
        _ = try await live.waitForHead()
        try await eventually("joined") { try await harness.metrics().connectedClients == 1 }
        harness.origin.broadcast(ByteBuffer(string: "id: a\ndata: one\n\nid: b\n\nid: c\ndata: three\n\n"))
        let events = try await live.waitForEvents(3)
        XCTAssertEqual(
            events,
            [
                ServerSentEvent(id: "a", data: "one"), ServerSentEvent(id: "b", data: nil),
                ServerSentEvent(id: "c", data: "three"),
            ]
        )
        XCTAssertTrue(live.body.contains("id: b\n\n"))
        let resumed = try await harness.client("/prices", headers: [("Last-Event-ID", "a")])
        let got9 = try await resumed.waitForEvents(2)
        XCTAssertEqual(got9, [ServerSentEvent(id: "b", data: nil), ServerSentEvent(id: "c", data: "three")])
        await live.close()
        await resumed.close()
    }

    func testUpstreamRestartResumesWithLastEventIDAndClientsSeeNoGapOrDuplicate() async throws {
        let harness = try await self.start()
        self.addTeardownBlock { await harness.stop() }
        let client = try await harness.client("/prices")
        _ = try await client.waitForHead()
        try await eventually("joined") { try await harness.metrics().connectedClients == 1 }
        try await self.publish(harness, 1...4)
        _ = try await client.waitForEvents(4)
        let before = harness.origin.requests.count
        harness.origin.closeStreams()  // the upstream "restarts"
        // Published while the gateway is reconnecting: the origin replays them from Last-Event-ID.
        harness.origin.publish(data: "event 5")
        harness.origin.publish(data: "event 6")
        try await eventually("reconnected") {
            harness.origin.requests.count > before && harness.origin.openConnections == 1
        }
        XCTAssertEqual(harness.origin.requests.last?.headers["Last-Event-ID"], ["4"])
        try await self.publish(harness, 7...7)
        let events = try await client.waitForEvents(7)
        XCTAssertEqual(events.map(\.id), ["1", "2", "3", "4", "5", "6", "7"])
        XCTAssertEqual(harness.origin.totalConnections, 2)
        await client.close()
    }

    func testGatewayAssignsIDsWhenUpstreamHasNoneAndResumesOnThem() async throws {
        let harness = try await Harness.start { origin in
            [try Harness.feed("/chat", upstream: "\(origin)/chat") { $0.ids = .gateway }]
        }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let live = try await harness.client("/chat")
        _ = try await live.waitForHead()
        try await eventually("joined") { try await harness.metrics().connectedClients == 1 }
        for index in 1...4 { harness.origin.publish(data: "m\(index)", assignID: false) }
        harness.origin.publish(data: "own id", id: "upstream-7")
        let events = try await live.waitForEvents(5)
        let ids = events.compactMap(\.id)
        XCTAssertEqual(ids.count, 5)
        XCTAssertEqual(Set(ids).count, 5, "ids are unique: \(ids)")
        XCTAssertEqual(ids.last, "upstream-7", "an upstream id is kept")
        let resumed = try await harness.client("/chat", headers: [("Last-Event-ID", ids[1])])
        let replay = try await resumed.waitForEvents(3)
        XCTAssertEqual(replay.map(\.data), ["m3", "m4", "own id"])
        XCTAssertEqual(replay.map(\.id), Array(ids[2...]))
        await live.close()
        await resumed.close()
    }

    func testResumeFromAnIDThisReplicaHasNotReceivedYetWaitsForItInsteadOfReplayingEverything() async throws {
        let harness = try await self.start()
        self.addTeardownBlock { await harness.stop() }
        try await self.publish(harness, 1...5)
        // The client saw 7 on another replica, which is ahead of this one.
        let client = try await harness.client("/prices", headers: [("Last-Event-ID", "7")])
        try await Task.sleep(nanoseconds: 100_000_000)
        try await self.publish(harness, 6...8)
        let events = try await client.waitForEvents(1)
        XCTAssertEqual(events.map(\.id), ["8"], "resumed after 7: no duplicates of 1...7")
        XCTAssertFalse(client.body.contains(": gap"))
        let head = try await client.waitForHead()
        XCTAssertTrue(head.headers["Last-Event-ID"].isEmpty)
        // An id that never comes is a gap after the wait, with the whole buffer.
        let stale = try await harness.client("/prices", headers: [("Last-Event-ID", "unknown-id")])
        let replay = try await stale.waitForEvents(8)
        XCTAssertEqual(replay.map(\.id), (1...8).map { String($0) })
        XCTAssertTrue(stale.body.contains(": gap"))
        // A numeric id older than the newest held is known to be past: the gap answer comes at once.
        await client.close()
        await stale.close()
    }
}
