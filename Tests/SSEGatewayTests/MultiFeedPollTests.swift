import NIOCore
import SSE
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// `/multi` in poll mode (SPEC §6a) through the real gateway, with the two feeds of `MultiFeedTests`:
/// finite responses with `Content-Length` carrying the events of every feed after the composite id, an
/// id-only start, a wait for the first batch of any feed, gaps naming the feed, one `poll.max_waiting`
/// slot per request, HTTP/2 and gzip, `delivery: poll` on the listener.
extension MultiFeedTests {
    private static let poll = "/multi?feed=/a&feed=/b&transport=poll"

    private func startPolling(
        timeout: TimeAmount = .seconds(5),
        gather: TimeAmount = .milliseconds(50),
        configureA: @escaping (inout FeedConfig) -> Void = { _ in },
        configure: @escaping (inout GatewayConfig) -> Void = { _ in }
    ) async throws -> Harness {
        try await self.start(
            configureA: {
                $0.settings.poll.timeout = timeout
                $0.settings.poll.gather = gather
                configureA(&$0)
            },
            configure: configure
        )
    }

    func testAPollResumesEveryFeedAtOnceWithCompositeIDs() async throws {
        let harness = try await self.startPolling()
        try await self.publish(harness, "/a", 1...3, type: "price")
        try await self.publish(harness, "/b", 1...2, type: "trade")
        let connection = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        defer { connection.close() }
        let started = NIODeadline.now()
        try await PollTest.send(connection, path: Self.poll, lastEventID: "m1:1,1")
        let response = try await connection.waitForResponses(1)[0]
        XCTAssertLessThan(NIODeadline.now() - started, .seconds(2), "no wait when there is something to send")
        PollTest.assertHead(response)
        XCTAssertEqual(response.header("Connection"), ["keep-alive"])
        XCTAssertTrue(response.body.hasPrefix("retry: 250\n\n"), response.body)
        let events = PollTest.events(response.body)
        XCTAssertEqual(events.map(\.data), ["/a 2", "/a 3", "/b 2"])
        XCTAssertEqual(events.map(\.type), ["price", "price", "trade"])
        XCTAssertEqual(events.map(\.id), ["m1:2,1", "m1:3,1", "m1:3,2"])
        XCTAssertEqual(harness.gateway.context.pollCount(.events), 1)
        let clients0 = try await harness.metrics().connectedClients
        XCTAssertEqual(clients0, 0, "a poll holds no max_clients slot")
    }

    func testAnIDOnlyStartThenAWaitingPollAnsweredByEitherFeed() async throws {
        let harness = try await self.startPolling(gather: .milliseconds(200))
        try await self.publish(harness, "/a", 1...3)
        try await self.publish(harness, "/b", 1...2)
        let connection = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        defer { connection.close() }
        try await PollTest.send(connection, path: Self.poll)
        let start = try await connection.waitForResponses(1)[0]
        PollTest.assertHead(start)
        XCTAssertEqual(start.body, "retry: 250\n\nid: m1:3,2\n\n")
        XCTAssertEqual(harness.gateway.context.pollCount(.id), 1)

        // The browser comes back with the id it was given: nothing new, so it waits on both feeds.
        try await PollTest.send(connection, path: Self.poll, lastEventID: "m1:3,2")
        try await self.waitUntilJoinedBoth(harness)
        XCTAssertEqual(harness.gateway.context.pollWaitingCount, 1, "one poll.max_waiting slot per multi poll")
        try await self.publish(harness, "/b", 3...3)
        try await self.publish(harness, "/a", 4...4)
        let second = try await connection.waitForResponses(2)[1]
        PollTest.assertHead(second)
        XCTAssertEqual(PollTest.events(second.body).map(\.data), ["/b 3", "/a 4"], "the gather took both")
        XCTAssertEqual(PollTest.events(second.body).map(\.id), ["m1:3,3", "m1:4,3"])
        try await eventually("shards and slot freed") {
            let clients = try await harness.metrics().clientsPerFeed
            return clients["/a", default: 0] == 0 && clients["/b", default: 0] == 0
                && harness.gateway.context.pollWaitingCount == 0
        }
    }

    func testAWaitingPollTimesOutWithOnlyRetry() async throws {
        let harness = try await self.startPolling(timeout: .milliseconds(300))
        try await self.publish(harness, "/a", 1...1)
        let connection = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        defer { connection.close() }
        try await PollTest.send(connection, path: Self.poll, lastEventID: "m1:1,")
        let response = try await connection.waitForResponses(1)[0]
        PollTest.assertHead(response)
        XCTAssertEqual(response.body, "retry: 250\n\n")
        XCTAssertEqual(harness.gateway.context.pollCount(.empty), 1)
    }

    func testAGapInAPollNamesTheFeed() async throws {
        let harness = try await self.startPolling(configureA: {
            $0.settings.replay.maxEvents = 2
            $0.settings.replay.gapEvent = true
        })
        try await self.publish(harness, "/a", 1...5)
        try await self.publish(harness, "/b", 1...2)
        let connection = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        defer { connection.close() }
        try await PollTest.send(connection, path: Self.poll, lastEventID: "m1:1,2")
        let response = try await connection.waitForResponses(1)[0]
        PollTest.assertHead(response)
        XCTAssertTrue(
            response.body.contains(": gap /a: last event id 1 is not buffered; replaying from 4"),
            response.body
        )
        let events = PollTest.events(response.body)
        XCTAssertEqual(events.first?.type, "gap")
        XCTAssertEqual(events.first?.data, "{\"feed\":\"/a\",\"lastEventId\":\"1\",\"replayFrom\":\"4\"}")
        XCTAssertEqual(events.dropFirst().map(\.id), ["m1:4,2", "m1:5,2"])
    }

    func testOverMaxWaitingA503AndEveryFeedIsFreed() async throws {
        let harness = try await self.startPolling(configure: { $0.limits.maxPollWaiting = 1 })
        try await self.publish(harness, "/a", 1...1)
        let waiting = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        try await PollTest.send(waiting, path: Self.poll, lastEventID: "m1:1,")
        try await self.waitUntilJoinedBoth(harness)
        let refused = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        defer { refused.close() }
        try await PollTest.send(refused, path: Self.poll, lastEventID: "m1:1,")
        let response = try await refused.waitForResponses(1)[0]
        XCTAssertEqual(response.status, 503)
        XCTAssertEqual(response.body, "too many poll requests\n")
        XCTAssertEqual(harness.gateway.context.pollCount(.overCapacity), 1)
        await waiting.closeAndWait()
        try await eventually("the waiting poll freed both feeds and its slot") {
            let clients = try await harness.metrics().clientsPerFeed
            return clients["/a", default: 0] == 0 && clients["/b", default: 0] == 0
                && harness.gateway.context.pollWaitingCount == 0
        }
        XCTAssertEqual(harness.gateway.context.pollCount(.left), 1)
    }

    func testAListenerWithDeliveryPollAnswersMultiInPollModeOverHTTP2AndGzip() async throws {
        let harness = try await self.startPolling(configure: { $0.listen[0].delivery = .poll })
        try await self.publish(harness, "/a", 1...2)
        try await self.publish(harness, "/b", 1...2)
        let connection = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        defer { connection.close() }
        try await PollTest.send(connection, path: "/multi?feed=/a&feed=/b", lastEventID: "m1:1,1")
        let response = try await connection.waitForResponses(1)[0]
        PollTest.assertHead(response)
        XCTAssertEqual(PollTest.events(response.body).map(\.id), ["m1:2,1", "m1:2,2"])

        let h2 = try await H2TestClient.connect(port: harness.port, group: harness.clientGroup)
        defer { Task { await h2.close() } }
        let stream = try await h2.request(
            "/multi?feed=/a&feed=/b",
            headers: [("last-event-id", "m1:1,2"), ("accept-encoding", "gzip")],
            gunzip: true
        )
        let answer = try await stream.waitForEnd()
        XCTAssertTrue(answer.endStream)
        XCTAssertEqual(answer.header("content-encoding"), ["gzip"])
        XCTAssertEqual(answer.header("content-length"), [String(answer.bodyBytes)])
        XCTAssertEqual(answer.events.map(\.id), ["m1:2,2"])
        XCTAssertEqual(answer.events.map(\.data), ["/a 2"])
    }
}
