import NIOCore
import SSE
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// `?event=` on `/multi` through the real gateway, with the two feeds of `MultiFeedTests`: the same filter
/// for every feed, the replay filtered, position marks with the composite id, and a resume with neither
/// gap nor duplicate among the asked types; in poll mode too.
extension MultiFeedTests {
    func testAFilterAppliesToEveryFeedAndAResumeHasNoGapAndNoDuplicate() async throws {
        let harness = try await self.start(
            configureA: { $0.settings.keepalive = .milliseconds(300) },
            configureB: { $0.settings.keepalive = .milliseconds(300) }
        )
        let client = try await harness.client("/multi?feed=/a&feed=/b&event=price")
        _ = try await client.waitForHead()
        try await self.waitUntilJoinedBoth(harness)
        try await self.publish(harness, "/a", 1...1, type: "price")
        try await self.publish(harness, "/a", 2...2, type: "trade")
        try await self.publish(harness, "/b", 1...1, type: "trade")
        try await self.publish(harness, "/b", 2...2, type: "price")
        try await self.publish(harness, "/a", 3...3, type: "trade")
        let priced = try await client.waitForEvents(2)
        XCTAssertEqual(priced.map(\.data), ["/a 1", "/b 2"])
        XCTAssertEqual(priced.map(\.id), ["m1:1,", "m1:1,2"])
        // Idle after skipping /a 3: an id-only position mark moves the browser's composite id past it.
        let mark = try await client.waitForEvents(3, timeout: .seconds(3))[2]
        XCTAssertNil(mark.data)
        XCTAssertEqual(mark.id, "m1:3,2")
        await client.close()

        // Missed while away; the resume gets only prices after each feed's position, then live ones.
        try await self.publish(harness, "/a", 4...4, type: "price")
        try await self.publish(harness, "/b", 3...3, type: "trade")
        try await self.publish(harness, "/a", 5...5, type: "trade")
        let resumed = try await harness.client(
            "/multi?feed=/a&feed=/b&event=price",
            headers: [("Last-Event-ID", "m1:3,2")]
        )
        let replay = try await resumed.waitForEvents(1)
        XCTAssertEqual(replay.map(\.data), ["/a 4"])
        XCTAssertEqual(replay.map(\.id), ["m1:4,2"])
        try await self.waitUntilJoinedBoth(harness)
        try await self.publish(harness, "/b", 4...4, type: "price")
        try await resumed.wait("the live price") { $0.events.contains { $0.data == "/b 4" } }
        let withData = resumed.events.filter { $0.data != nil }
        XCTAssertEqual(withData.map(\.data), ["/a 4", "/b 4"], "no gap, no duplicate, no other type")
        XCTAssertEqual(withData.last?.id, "m1:4,4")
        XCTAssertFalse(resumed.body.contains("gap"), resumed.body)
        await resumed.close()
    }

    func testAFilteredMultiPollGetsOnlyItsTypes() async throws {
        let harness = try await self.start(configureA: {
            $0.settings.poll.timeout = .seconds(5)
            $0.settings.poll.gather = .milliseconds(50)
        })
        try await self.publish(harness, "/a", 1...1, type: "price")
        try await self.publish(harness, "/a", 2...2, type: "trade")
        try await self.publish(harness, "/a", 3...3, type: "price")
        try await self.publish(harness, "/b", 1...1, type: "price")
        try await self.publish(harness, "/b", 2...2, type: "trade")
        let path = "/multi?feed=/a&feed=/b&event=trade&transport=poll"
        let connection = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        defer { connection.close() }
        try await PollTest.send(connection, path: path, lastEventID: "m1:1,1")
        let first = try await connection.waitForResponses(1)[0]
        PollTest.assertHead(first)
        XCTAssertEqual(PollTest.events(first.body).map(\.data), ["/a 2", "/b 2"])
        XCTAssertEqual(PollTest.events(first.body).map(\.id), ["m1:2,1", "m1:2,2"])

        try await PollTest.send(connection, path: path, lastEventID: "m1:2,2")
        try await self.waitUntilJoinedBoth(harness)
        try await self.publish(harness, "/a", 4...4, type: "price")
        try await Task.sleep(for: .milliseconds(300))
        let answered = try await connection.waitForResponses(1).count
        XCTAssertEqual(answered, 1, "a price does not answer a trade poll")
        try await self.publish(harness, "/b", 3...3, type: "trade")
        let second = try await connection.waitForResponses(2)[1]
        PollTest.assertHead(second)
        XCTAssertEqual(PollTest.events(second.body).map(\.data), ["/b 3"])
        XCTAssertEqual(PollTest.events(second.body).map(\.id), ["m1:2,3"])
    }
}
